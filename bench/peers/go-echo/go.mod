module gort/bench/peers/go-echo

go 1.19
