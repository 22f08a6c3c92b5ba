/* The NATS anchors' publisher (bench/events.sh): every line of FILE, without
 * its newline, published to SUBJECT at the server URL.
 *   core: at most once (natsConnection_Publish), then a flush, so the server
 *         has read every message when this exits.
 *   js:   JetStream async publishes with at most 1,000 acks pending, then a
 *         wait for every ack (js_PublishAsyncComplete).
 * Prints to stderr how many were published and how many JetStream refused.
 *   nats-pub core|js URL SUBJECT FILE */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t failed;

static void ack_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js; (void)pae; (void)closure;
    failed++;
}

static void die(const char *what, natsStatus s)
{
    fprintf(stderr, "nats-pub: %s: %s\n", what, natsStatus_GetText(s));
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "core") && strcmp(argv[1], "js"))) {
        fprintf(stderr, "usage: nats-pub core|js URL SUBJECT FILE\n");
        return 2;
    }
    int jet = strcmp(argv[1], "js") == 0;
    const char *subject = argv[3];
    FILE *in = fopen(argv[4], "r");
    if (!in) { perror(argv[4]); return 1; }

    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsStatus s = natsConnection_ConnectTo(&nc, argv[2]);
    if (s != NATS_OK) die("connect", s);
    if (jet) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.PublishAsync.MaxPending = 1000;
        jo.PublishAsync.ErrHandler = ack_error;
        jo.Wait = 120000;
        s = natsConnection_JetStream(&js, nc, &jo);
        if (s != NATS_OK) die("jetstream context", s);
    }

    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t sent = 0;
    while ((len = getline(&line, &cap, in)) > 0) {
        if (line[len - 1] == '\n') len--;
        s = jet ? js_PublishAsync(js, subject, line, (int)len, NULL)
                : natsConnection_Publish(nc, subject, line, (int)len);
        if (s != NATS_OK) die("publish", s);
        sent++;
    }
    if (jet) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = 120000;
        s = js_PublishAsyncComplete(js, &po);
        if (s != NATS_OK) die("waiting for the acks", s);
    } else {
        s = natsConnection_FlushTimeout(nc, 120000);
        if (s != NATS_OK) die("flush", s);
    }
    fprintf(stderr, "nats-pub: published %lld, refused %lld\n", (long long)sent, (long long)failed);

    free(line);
    fclose(in);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return 0;
}
