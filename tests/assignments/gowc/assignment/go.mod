module wc

go 1.19
