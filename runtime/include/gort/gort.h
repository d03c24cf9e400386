// gort.h: everything an application needs.
#pragma once

#include <gort/blocking.h>
#include <gort/chan.h>
#include <gort/condvar.h>
#include <gort/context.h>
#include <gort/debug.h>
#include <gort/metrics.h>
#include <gort/mutex.h>
#include <gort/runtime.h>
#include <gort/select.h>
#include <gort/time.h>
#include <gort/timer.h>
#include <gort/waitgroup.h>
#include <gort/worker_stack.h>
