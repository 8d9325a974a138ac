/*
 * c-timer: a webserver app in C that answers from its own timer thread (ABI 1.1 deferred
 * responses), against app-abi/include/webserver_app.h alone.
 *
 *   cc -shared -fPIC -O2 -pthread -I app-abi/include -o libc_timer.so sample-apps/c-timer/timer.c
 *   webserver ./libc_timer.so:app [DELAY_MS] [WORDS]...
 *
 * Routes:
 *   /wait?ms=N  200 "waited N ms\n" after N ms (default: the first app argument, else 100).
 *               `call` returns at once; `next` answers WS_PENDING until the timer thread has
 *               fired and called waker_wake — no server thread waits meanwhile.
 *   /stats      "fired=F closed_early=C\n": timers fired, and requests closed before they were
 *               answered (client gone, --timeout, drain): the app's cancellation path.
 *   /args       the app arguments init received, one per line.
 *
 * Ownership: each /wait request's context is malloc'd in `call` and freed in `close`, which first
 * takes it off the timer list under the timer mutex (so the timer thread never touches a freed
 * context) and then frees its waker — exactly once, from the thread running close.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "webserver_app.h"

#define DEFAULT_DELAY_MS 100
#define MAX_ARGS 16
#define MAX_ARG_LEN 256

typedef struct waiter {
    struct waiter *prev, *next; /* on the timer list while armed (guarded by timer.lock) */
    struct timespec due;        /* CLOCK_MONOTONIC */
    void *waker;
    atomic_int fired;
    int listed;
} waiter;

typedef struct timer_app {
    const ws_host *host;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    waiter *armed; /* unsorted: the thread scans for the earliest */
    int stopping;
    atomic_long fired;
    atomic_long closed_early;
    long default_ms;
    size_t n_args;
    char args[MAX_ARGS][MAX_ARG_LEN];
} timer_app;

/* A body: a /wait request (waiting non-NULL) or a ready text. */
typedef struct body_ctx {
    timer_app *app;
    const ws_host *host;
    void *io;
    waiter *waiting;
    int answered; /* start_response done */
    int sent;     /* the chunk was returned */
    char text[MAX_ARGS * (MAX_ARG_LEN + 1) + 64];
    size_t len;
} body_ctx;

static int before(const struct timespec *a, const struct timespec *b) {
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void unlist(timer_app *app, waiter *w) {
    if (!w->listed) return;
    if (w->prev) w->prev->next = w->next; else app->armed = w->next;
    if (w->next) w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->listed = 0;
}

/* The timer thread: fire every due waiter (waker_wake from this thread: any thread may). */
static void *timer_main(void *arg) {
    timer_app *app = (timer_app *)arg;
    pthread_mutex_lock(&app->lock);
    while (!app->stopping) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        waiter *earliest = NULL;
        for (waiter *w = app->armed; w != NULL;) {
            waiter *next = w->next;
            if (!before(&now, &w->due)) {
                unlist(app, w);
                atomic_store(&w->fired, 1);
                atomic_fetch_add(&app->fired, 1);
                app->host->waker_wake(w->waker);
            } else if (earliest == NULL || before(&w->due, &earliest->due)) {
                earliest = w;
            }
            w = next;
        }
        if (earliest == NULL) {
            pthread_cond_wait(&app->changed, &app->lock);
        } else {
            struct timespec due = earliest->due;
            pthread_cond_timedwait(&app->changed, &app->lock, &due);
        }
    }
    pthread_mutex_unlock(&app->lock);
    return NULL;
}

static void fail(const ws_init *init, const char *msg) {
    size_t len = strlen(msg);
    if (len > init->error_cap) len = init->error_cap;
    memcpy(init->error_buf, msg, len);
    *init->error_len = len;
}

static int32_t timer_init(const ws_init *init, void **state) {
    /* Feature check: a 1.0 server's ws_host ends at `log`. */
    if (!WS_HAS_FIELD(init->host, ws_host, waker_free)) {
        fail(init, "c-timer needs a webserver speaking ABI 1.1 (wakers); this server speaks 1.0: "
                   "upgrade webserver");
        return -1;
    }
    timer_app *app = calloc(1, sizeof *app);
    if (app == NULL) {
        fail(init, "out of memory");
        return -1;
    }
    app->host = init->host;
    app->default_ms = DEFAULT_DELAY_MS;
    if (WS_HAS_FIELD(init, ws_init, n_args)) {
        for (size_t i = 0; i < init->n_args && i < MAX_ARGS; i++) {
            size_t len = init->args[i].len < MAX_ARG_LEN - 1 ? init->args[i].len : MAX_ARG_LEN - 1;
            memcpy(app->args[i], init->args[i].ptr, len); /* copied: args live during init only */
            app->args[i][len] = '\0';
            app->n_args = i + 1;
        }
        if (app->n_args > 0 && atol(app->args[0]) > 0) app->default_ms = atol(app->args[0]);
    }
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&app->changed, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&app->lock, NULL);
    if (pthread_create(&app->thread, NULL, timer_main, app) != 0) {
        fail(init, "cannot start the timer thread");
        free(app);
        return -1;
    }
    *state = app;
    return WS_OK;
}

static void timer_shutdown(void *state) {
    timer_app *app = (timer_app *)state;
    pthread_mutex_lock(&app->lock);
    app->stopping = 1;
    pthread_cond_signal(&app->changed);
    pthread_mutex_unlock(&app->lock);
    pthread_join(app->thread, NULL);
    pthread_mutex_destroy(&app->lock);
    pthread_cond_destroy(&app->changed);
    free(app);
}

static int32_t answer(body_ctx *b) {
    if (!b->answered) {
        static const char type_name[] = "Content-Type", type_value[] = "text/plain";
        ws_pair header = {{(const uint8_t *)type_name, sizeof type_name - 1},
                          {(const uint8_t *)type_value, sizeof type_value - 1}};
        ws_bytes reason = {NULL, 0};
        int32_t rc = b->host->start_response(b->io, 200, reason, &header, 1, 0);
        if (rc != WS_OK) return rc;
        b->answered = 1;
    }
    return WS_OK;
}

static int32_t timer_next(void *ctx, ws_bytes *chunk) {
    body_ctx *b = (body_ctx *)ctx;
    if (b->waiting != NULL && !atomic_load(&b->waiting->fired)) return WS_PENDING;
    if (b->sent) return 0;
    int32_t rc = answer(b); /* start_response from a later `next`: allowed */
    if (rc != WS_OK) return rc;
    b->sent = 1;
    chunk->ptr = (const uint8_t *)b->text;
    chunk->len = b->len;
    return 1;
}

static void timer_close(void *ctx) {
    body_ctx *b = (body_ctx *)ctx;
    if (b->waiting != NULL) {
        pthread_mutex_lock(&b->app->lock);
        unlist(b->app, b->waiting); /* the timer thread cannot reach it after this */
        pthread_mutex_unlock(&b->app->lock);
        b->host->waker_free(b->waiting->waker);
        free(b->waiting);
    }
    if (!b->sent) atomic_fetch_add(&b->app->closed_early, 1);
    free(b);
}

static int path_is(const ws_request *req, const char *want) {
    ws_bytes path;
    return ws_getenv(req, "PATH_INFO", &path) && path.len == strlen(want) &&
           memcmp(path.ptr, want, path.len) == 0;
}

static long query_ms(const ws_request *req, long fallback) {
    ws_bytes query;
    if (!ws_getenv(req, "QUERY_STRING", &query) || query.len < 3 || query.len > 32) return fallback;
    char text[40];
    memcpy(text, query.ptr, query.len);
    text[query.len] = '\0';
    return strncmp(text, "ms=", 3) == 0 ? atol(text + 3) : fallback;
}

static int32_t timer_call(void *state, const ws_request *req, ws_body *body) {
    timer_app *app = (timer_app *)state;
    body_ctx *b = calloc(1, sizeof *b);
    if (b == NULL) return -1;
    b->app = app;
    b->host = req->host;
    b->io = req->io;
    body->ctx = b;
    body->next = timer_next;
    body->close = timer_close;
    if (path_is(req, "/stats")) {
        b->len = (size_t)snprintf(b->text, sizeof b->text, "fired=%ld closed_early=%ld\n",
                                  atomic_load(&app->fired), atomic_load(&app->closed_early));
        b->sent = 0;
        return WS_OK;
    }
    if (path_is(req, "/args")) {
        size_t at = 0;
        for (size_t i = 0; i < app->n_args; i++)
            at += (size_t)snprintf(b->text + at, sizeof b->text - at, "%s\n", app->args[i]);
        b->len = at;
        return WS_OK;
    }
    long ms = query_ms(req, app->default_ms);
    b->len = (size_t)snprintf(b->text, sizeof b->text, "waited %ld ms\n", ms);
    waiter *w = calloc(1, sizeof *w);
    if (w == NULL) {
        free(b);
        return -1;
    }
    w->waker = req->host->waker_new(req->io);
    if (w->waker == NULL) {
        free(w);
        free(b);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &w->due);
    w->due.tv_sec += ms / 1000;
    w->due.tv_nsec += (ms % 1000) * 1000000L;
    if (w->due.tv_nsec >= 1000000000L) {
        w->due.tv_sec += 1;
        w->due.tv_nsec -= 1000000000L;
    }
    b->waiting = w;
    pthread_mutex_lock(&app->lock);
    w->next = app->armed;
    if (app->armed) app->armed->prev = w;
    app->armed = w;
    w->listed = 1;
    pthread_cond_signal(&app->changed);
    pthread_mutex_unlock(&app->lock);
    return WS_OK;
}

const ws_app app = {WS_APP_HEADER(0), "c-timer", "1.0", timer_init, timer_call, timer_shutdown};
