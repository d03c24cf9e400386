// export_test.h: the internals tests may reach (Go's export_test.go). Tests
// include this and nothing else from runtime/src.
#pragma once

#include "netpoll.h"
#include "platform.h"
#include "scheduler.h"
#include "stack.h"
#include "timer_heap.h"
