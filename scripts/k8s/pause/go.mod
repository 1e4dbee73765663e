module dmc/pause

go 1.22
