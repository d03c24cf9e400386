module gort/bench/peers/go-dumb

go 1.19
