// cxx_threads — C++ new/delete across threads, for the override tests
// (run.sh cxx_threads, cxx_threads_static). An ordinary C++ program: run
// with and without libgoalloc-override (preloaded, or linked in statically)
// it must print the same lines.
//
// Producers allocate objects with every form of operator new (plain, array,
// aligned, nothrow) and hand them to consumers on other threads, which
// delete them (sized, aligned and array deletes: cross-thread frees). Each
// thread also churns standard containers. Then the failure paths: a huge
// new throws std::bad_alloc, nothrow new returns nullptr, and a
// new_handler is called before the throw.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

struct alignas(64) CacheLine {
  uint64_t v[8];
};

struct alignas(4096) PageAligned {
  unsigned char bytes[5000];
};

struct Item {
  int kind;
  uint64_t value;
  void *p;
};

std::mutex mu;
std::condition_variable cv;
std::deque<Item> queue;
int producers_left;
std::atomic<uint64_t> misaligned{0};

uint64_t lcg(uint64_t &x) {
  x = x * 6364136223846793005ull + 1442695040888963407ull;
  return x >> 33;
}

void check_align(const void *p, uintptr_t a) {
  if (reinterpret_cast<uintptr_t>(p) % a != 0) misaligned++;
}

Item make_item(uint64_t r) {
  Item it{static_cast<int>(r % 6), r, nullptr};
  switch (it.kind) {
    case 0: it.p = new std::string(r % 200, 'a' + r % 26); break;
    case 1: it.p = new uint64_t[1 + r % 300](); break;
    case 2: {
      CacheLine *c = new CacheLine;
      check_align(c, 64);
      c->v[0] = r;
      it.p = c;
      break;
    }
    case 3: {
      CacheLine *c = new CacheLine[1 + r % 40];
      check_align(c, 64);
      c[0].v[0] = r;
      it.p = c;
      break;
    }
    case 4: {
      PageAligned *pa = new (std::nothrow) PageAligned;
      check_align(pa, 4096);
      pa->bytes[0] = static_cast<unsigned char>(r);
      it.p = pa;
      break;
    }
    default: it.p = new std::vector<int>(r % 1000, 7); break;
  }
  return it;
}

uint64_t consume(const Item &it) {
  uint64_t sum = 0;
  switch (it.kind) {
    case 0: {
      auto *s = static_cast<std::string *>(it.p);
      sum = s->size();
      delete s;
      break;
    }
    case 1: {
      auto *a = static_cast<uint64_t *>(it.p);
      sum = a[0] + 1 + it.value % 300;
      delete[] a;
      break;
    }
    case 2: {
      auto *c = static_cast<CacheLine *>(it.p);
      sum = c->v[0] % 1000;
      delete c;
      break;
    }
    case 3: {
      auto *c = static_cast<CacheLine *>(it.p);
      sum = c[0].v[0] % 1000;
      delete[] c;
      break;
    }
    case 4: {
      auto *pa = static_cast<PageAligned *>(it.p);
      sum = pa->bytes[0];
      delete pa;
      break;
    }
    default: {
      auto *v = static_cast<std::vector<int> *>(it.p);
      sum = v->size();
      delete v;
      break;
    }
  }
  return sum;
}

void producer(int id, int n) {
  uint64_t x = 1000 + id;
  for (int i = 0; i < n; i++) {
    Item it = make_item(lcg(x));
    std::unique_lock<std::mutex> lk(mu);
    queue.push_back(it);
    lk.unlock();
    cv.notify_one();
  }
  std::lock_guard<std::mutex> lk(mu);
  producers_left--;
  cv.notify_all();
}

void consumer(uint64_t *out) {
  uint64_t sum = 0;
  for (;;) {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [] { return !queue.empty() || producers_left == 0; });
    if (queue.empty()) break;
    Item it = queue.front();
    queue.pop_front();
    lk.unlock();
    sum += consume(it);
  }
  *out = sum;
}

// Thread-local container churn: map/unordered_map/vector growth, shared_ptr.
uint64_t churn(int id, int n) {
  uint64_t x = 77 + id, sum = 0;
  std::map<int, std::string> m;
  std::unordered_map<uint64_t, std::vector<char>> um;
  std::vector<std::shared_ptr<std::string>> shared;
  for (int i = 0; i < n; i++) {
    uint64_t r = lcg(x);
    m[static_cast<int>(r % 2000)] = std::string(r % 100, 'z');
    if (r % 3 == 0) m.erase(static_cast<int>((r >> 8) % 2000));
    um[r % 500].assign(r % 700, 'q');
    if (r % 5 == 0) um.erase((r >> 9) % 500);
    shared.push_back(std::make_shared<std::string>(r % 50, 's'));
    if (shared.size() > 100) shared.erase(shared.begin(), shared.begin() + 50);
  }
  for (auto &kv : m) sum += kv.second.size();
  for (auto &kv : um) sum += kv.second.size();
  return sum + shared.size();
}

int handler_calls;
void handler() {
  handler_calls++;
  std::set_new_handler(nullptr);  // next failure throws
}

}  // namespace

int main() {
  const int nprod = 2, ncons = 2, per = 60000;
  producers_left = nprod;
  std::vector<std::thread> threads;
  std::vector<uint64_t> sums(ncons), churns(nprod);
  for (int i = 0; i < ncons; i++) threads.emplace_back(consumer, &sums[i]);
  for (int i = 0; i < nprod; i++) threads.emplace_back(producer, i, per);
  for (auto &t : threads) t.join();
  threads.clear();
  for (int i = 0; i < nprod; i++)
    threads.emplace_back([i, &churns] { churns[i] = churn(i, 100000); });
  for (auto &t : threads) t.join();

  uint64_t total = 0;
  for (uint64_t s : sums) total += s;
  std::printf("cross-thread items: %d, checksum %llu\n", nprod * per,
              static_cast<unsigned long long>(total));
  for (int i = 0; i < nprod; i++)
    std::printf("churn %d: %llu\n", i, static_cast<unsigned long long>(churns[i]));
  std::printf("misaligned: %llu\n", static_cast<unsigned long long>(misaligned.load()));

  volatile size_t huge = SIZE_MAX / 4;
  try {
    char *p = new char[huge];
    std::printf("huge new returned %p\n", static_cast<void *>(p));
  } catch (const std::bad_alloc &) {
    std::printf("huge new: std::bad_alloc\n");
  }
  char *q = new (std::nothrow) char[huge];
  std::printf("huge nothrow new: %s\n", q == nullptr ? "nullptr" : "non-null");
  try {
    char *c = new (std::align_val_t(256)) char[huge];
    std::printf("huge aligned new returned %p\n", static_cast<void *>(c));
  } catch (const std::bad_alloc &) {
    std::printf("huge aligned new: std::bad_alloc\n");
  }
  std::set_new_handler(handler);
  try {
    char *p = new char[huge];
    std::printf("huge new returned %p\n", static_cast<void *>(p));
  } catch (const std::bad_alloc &) {
    std::printf("new_handler called %d time(s), then std::bad_alloc\n", handler_calls);
  }
  char *z = new char[0];
  char *z2 = new char[0];
  std::printf("new char[0]: %s\n", z != nullptr && z != z2 ? "unique" : "BAD");
  delete[] z;
  delete[] z2;
  return 0;
}
