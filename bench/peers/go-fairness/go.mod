module gort/bench/peers/go-fairness

go 1.19
