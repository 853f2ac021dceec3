/* server.h — `zhiku serve`: the HTTP API, the web portal and (later) the
 * chat webhooks over libmicrohttpd. srv_run() starts listening at once
 * (so /healthz answers), loads and replays the vector indexes in the
 * background (/readyz turns 200 when done), and returns after SIGTERM or
 * SIGINT: it stops accepting, lets in-flight requests finish, saves the
 * vector snapshots and closes the store. */
#ifndef SRV_SERVER_H
#define SRV_SERVER_H

#include "zk.h"
#include "config.h"

typedef struct {
    const char *listen;     /* "HOST:PORT"; NULL = [server] listen */
    const char *data_dir;
    const zk_config *cfg;
} srv_opts;

/* Runs until a termination signal; returns a zk_rc (err holds details). */
zk_rc srv_run(const srv_opts *o, char *err);

#endif
