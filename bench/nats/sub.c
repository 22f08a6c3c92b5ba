/* The NATS anchors' subscriber (bench/events.sh): subscribes to SUBJECT,
 * touches READY once the server has the subscription, then writes every
 * message it receives to stdout, one a line, until it has N, or nothing has
 * come for 3 s after the first, or TIMEOUT seconds have passed.
 *   core: a plain subscription, at most once, its pending limits removed so
 *         that the library drops nothing (loss is the transport's).
 *   js:   a file-backed stream STREAM on SUBJECT (deleted and made anew, so
 *         each run starts empty) and a durable pull consumer with explicit
 *         acks (at least once): fetches of up to 1,000, each message acked.
 * On stderr: the count, the messages the library dropped, and the wall-clock
 * time (seconds since the epoch) of the first and the last message.
 *   nats-sub core|js URL SUBJECT N READY TIMEOUT [STREAM] */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what, natsStatus s)
{
    fprintf(stderr, "nats-sub: %s: %s\n", what, natsStatus_GetText(s));
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 7 || (strcmp(argv[1], "core") && strcmp(argv[1], "js"))) {
        fprintf(stderr, "usage: nats-sub core|js URL SUBJECT N READY TIMEOUT [STREAM]\n");
        return 2;
    }
    int jet = strcmp(argv[1], "js") == 0;
    const char *subject = argv[3];
    long n = atol(argv[4]);
    double deadline = wall() + atof(argv[6]);
    const char *stream = argc > 7 ? argv[7] : "METRICS";
    static char out[1 << 16];
    setvbuf(stdout, out, _IOFBF, sizeof out);

    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    jsCtx *js = NULL;
    jsErrCode jerr = 0;
    natsStatus s = natsConnection_ConnectTo(&nc, argv[2]);
    if (s != NATS_OK) die("connect", s);
    if (jet) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = 20000;
        s = natsConnection_JetStream(&js, nc, &jo);
        if (s != NATS_OK) die("jetstream context", s);
        s = js_DeleteStream(js, stream, NULL, &jerr);
        if (s != NATS_OK && s != NATS_NOT_FOUND) die("deleting the stream", s);
        jsStreamConfig sc;
        jsStreamConfig_Init(&sc);
        sc.Name = stream;
        sc.Subjects = &subject;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        s = js_AddStream(NULL, js, &sc, NULL, &jerr);
        if (s != NATS_OK) die("adding the stream", s);
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Config.AckPolicy = js_AckExplicit;
        s = js_PullSubscribe(&sub, js, subject, "bench", NULL, &so, &jerr);
        if (s != NATS_OK) die("pull subscribe", s);
    } else {
        s = natsConnection_SubscribeSync(&sub, nc, subject);
        if (s != NATS_OK) die("subscribe", s);
        s = natsSubscription_SetPendingLimits(sub, -1, -1);
        if (s != NATS_OK) die("pending limits", s);
    }
    s = natsConnection_Flush(nc);
    if (s != NATS_OK) die("flush", s);
    FILE *ready = fopen(argv[5], "w");
    if (!ready) { perror(argv[5]); return 1; }
    fclose(ready);

    long count = 0;
    double first = 0, last = 0;
    while (count < n) {
        double t = wall();
        if (t > deadline || (count > 0 && t - last > 3)) break;
        if (jet) {
            natsMsgList list = {0};
            int batch = n - count < 1000 ? (int)(n - count) : 1000;
            s = natsSubscription_Fetch(&list, sub, batch, 500, &jerr);
            if (s == NATS_TIMEOUT) continue;
            if (s != NATS_OK) die("fetch", s);
            for (int i = 0; i < list.Count; i++) {
                natsMsg *m = list.Msgs[i];
                fwrite(natsMsg_GetData(m), 1, (size_t)natsMsg_GetDataLength(m), stdout);
                putchar('\n');
                s = natsMsg_Ack(m, NULL);
                if (s != NATS_OK) die("ack", s);
            }
            if (list.Count > 0) {
                last = wall();
                if (count == 0) first = last;
                count += list.Count;
            }
            natsMsgList_Destroy(&list);
        } else {
            natsMsg *m = NULL;
            s = natsSubscription_NextMsg(&m, sub, 500);
            if (s == NATS_TIMEOUT) continue;
            if (s != NATS_OK) die("next message", s);
            last = wall();
            if (count == 0) first = last;
            count++;
            fwrite(natsMsg_GetData(m), 1, (size_t)natsMsg_GetDataLength(m), stdout);
            putchar('\n');
            natsMsg_Destroy(m);
        }
    }
    fflush(stdout);
    if (jet) natsConnection_Flush(nc); /* the last acks reach the server */
    int64_t dropped = 0;
    natsSubscription_GetDropped(sub, &dropped);
    fprintf(stderr, "count %ld dropped %lld first %.6f last %.6f\n", count, (long long)dropped, first, last);

    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return 0;
}
