module ctxbench

go 1.22
