module goallocbench

go 1.19
