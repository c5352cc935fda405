/*
 * rdkafka_bench.c — the librdkafka side of Benchmarks/compare.sh.
 *
 * Runs the same workload as `klife bench produce|consume` with librdkafka and prints the
 * same single JSON line ("client":"librdkafka"). Built by compare.sh against the
 * librdkafka shipped in the confluent-kafka wheel (headers from Debian's librdkafka-dev;
 * the functions used here have kept their ABI), e.g.:
 *
 *   gcc -O2 -o rdkafka_bench rdkafka_bench.c \
 *       .venv/lib/python3.11/site-packages/confluent_kafka.libs/librdkafka-*.so.1 \
 *       -Wl,-rpath,$PWD/.venv/lib/python3.11/site-packages/confluent_kafka.libs -lm
 *
 * Usage: rdkafka_bench produce|consume -b HOST:PORT -t TOPIC [options] (see usage()).
 *
 * Produce: N records of B value bytes (no key, RD_KAFKA_PARTITION_UA: librdkafka's
 * default partitioner, sticky for unkeyed records), each copied by librdkafka
 * (RD_KAFKA_MSG_F_COPY) from a buffer holding the record index in its first 8 bytes —
 * the same per-record copy klife's bench makes. QUEUE_FULL is handled by polling. The
 * delivery-report callback counts outcomes; every K-th record carries its enqueue time
 * as the message opaque so its enqueue->ack latency is recorded. --sync produces one
 * record and flushes before the next, timing each.
 *
 * Open loop (--rate N, as `klife bench produce --rate`): record i is scheduled at
 * start + i/N s. The main thread produces every record whose time has passed, then sleeps
 * until the next one with clock_nanosleep (absolute, 1 us timer slack), but never for less
 * than 50 us, so it wakes at most 20,000 times a second instead of spinning. QUEUE_FULL is
 * retried after 50 us. Every record carries its index as the opaque; a poller thread
 * (rd_kafka_poll in a loop: librdkafka hands delivery reports to whichever application
 * thread polls) records scheduled-time -> acknowledgement for every record, so a stalled
 * producer cannot hide latency. The first 0.5 s are a warm-up, not measured.
 *
 * Consume: by default (or --assign) no group join: the partitions are assigned at their
 * low watermark (what OFFSET_BEGINNING resolves to, but without the extra ListOffsets after
 * the clock starts), and rd_kafka_consume_batch_queue is read until N records arrived;
 * every value is touched (length + first + last byte), as klife's bench does. The local
 * prefetch limits are lifted (see run_consume) so librdkafka never idles in its 1 s
 * fetch-queue backoff, and check.crcs is on because klife always verifies CRCs.
 * With --group the consumer subscribes as a member of a fresh group (auto.offset.reset
 * earliest); the clock starts in the rebalance callback that receives the assignment
 * (as klife's onAssigned), and subscribe -> assignment is reported as "join_seconds".
 *
 * CPU: getrusage(RUSAGE_SELF) — every thread, librdkafka's own included — over the
 * measured section. --threads prints per-thread CPU from /proc/self/task on stderr.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

/* ---------- options ---------- */

static const char *mode;
static const char *brokers;
static const char *topic;
static long long records = 1000000;
static long record_size = 100;
static int partitions = 1;
static const char *acks = "all";
static const char *compression = "none";
static long linger_ms = 0;
static int idempotent = -1; /* -1: true with acks=all, else false */
static long batch_bytes = 1048576;
static long max_buffered = 1000000;
static int sync_mode = 0;
static long long warmup = 0;
static long latency_every = 64;
static long long rate = 0;        /* --rate: open loop, records per second (0: off) */
static double duration_s = -1;    /* --duration: open loop measured seconds (default 5) */
static int records_given = 0;
static long fetch_max_bytes = 8388608;
static long max_wait_ms = 100;
static int show_threads = 0;
static int check_crcs = 1;
static int verbose = 0;
static const char *group_id = NULL; /* consume: subscribe as a member of this group */
static long session_timeout_ms = 6000;
static int assign_flag = 0;         /* consume: --assign, the default without --group */
static const char *debug_contexts = NULL;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rdkafka_bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void usage(void) {
    fprintf(stderr,
            "Usage: rdkafka_bench produce|consume -b HOST:PORT -t TOPIC [options]\n"
            "       rdkafka_bench version     (prints the librdkafka version in use)\n"
            "  -n, --records N           records in the measured section (default 1000000)\n"
            "  -s, --record-size BYTES   value size (default 100)\n"
            "  -P, --partitions P        produce: create the topic with P partitions if missing (default 1)\n"
            "      --acks all|1|0        (default all)\n"
            "  -z, --compression CODEC   none|gzip|snappy|lz4|zstd (default none)\n"
            "      --linger-ms N         (default 0)\n"
            "      --idempotent true|false  (default true with acks all)\n"
            "      --batch-bytes N       batch.size (default 1048576)\n"
            "      --max-buffered N      queue.buffering.max.messages (default 1000000, as klife)\n"
            "      --sync                produce one record at a time\n"
            "      --warmup N            records produced and flushed before measuring (default 0)\n"
            "      --latency-every K     time every K-th record's delivery (default 64; 0 = none)\n"
            "      --rate N              open loop: schedule N records a second, time every record from its\n"
            "                            scheduled time to its acknowledgement (0.5 s warm-up not measured)\n"
            "      --duration S          open loop: measured seconds (default 5; -n N measures N records)\n"
            "      --fetch-max-bytes N   consume: fetch.max.bytes and max.partition.fetch.bytes (default 8388608)\n"
            "      --max-wait-ms N       consume: fetch.wait.max.ms (default 100)\n"
            "      --check-crcs true|false  consume: check.crcs (default true, as klife always checks)\n"
            "      --group GROUP         consume: subscribe as a member of GROUP (a fresh group reads from\n"
            "                            the beginning); the clock starts when the partitions are assigned,\n"
            "                            the join before it is reported as join_seconds\n"
            "      --session-timeout-ms N  consume --group: session.timeout.ms (default 6000)\n"
            "      --assign              consume: assign every partition, no group (the default)\n"
            "      --threads             per-thread CPU on stderr\n"
            "  -v, --verbose             librdkafka log lines on stderr\n"
            "      --debug CONTEXTS      librdkafka debug contexts (e.g. fetch,protocol), logged on stderr\n");
    exit(64);
}

static int parse_bool(const char *name, const char *v) {
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on")) return 1;
    if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off")) return 0;
    fprintf(stderr, "rdkafka_bench: invalid value '%s' for %s: expected true or false\n", v, name);
    exit(64);
}

static long long parse_int(const char *name, const char *v, long long lo, long long hi) {
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end || end == v || n < lo || n > hi) {
        fprintf(stderr, "rdkafka_bench: invalid value '%s' for %s: expected an integer in %lld...%lld\n", v, name, lo, hi);
        exit(64);
    }
    return n;
}

static void parse_args(int argc, char **argv) {
    if (argc < 2) usage();
    mode = argv[1];
    if (!strcmp(mode, "-h") || !strcmp(mode, "--help")) usage();
    if (!strcmp(mode, "version") || !strcmp(mode, "--version")) {
        printf("%s\n", rd_kafka_version_str());
        exit(0);
    }
    if (strcmp(mode, "produce") && strcmp(mode, "consume")) die("unknown mode '%s' (expected produce or consume)", mode);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
#define IS(s, l) (!strcmp(a, s) || !strcmp(a, l))
#define VAL() (i + 1 < argc ? argv[++i] : (die("option %s needs a value", a), (char *)0))
        if (IS("-b", "--bootstrap") || !strcmp(a, "--brokers")) brokers = VAL();
        else if (IS("-t", "--topic")) topic = VAL();
        else if (IS("-n", "--records")) { records = parse_int(a, VAL(), 1, 1000000000); records_given = 1; }
        else if (IS("-s", "--record-size")) record_size = (long)parse_int(a, VAL(), 0, 1 << 20);
        else if (IS("-P", "--partitions")) partitions = (int)parse_int(a, VAL(), 1, 10000);
        else if (!strcmp(a, "--acks")) {
            acks = VAL();
            if (strcmp(acks, "all") && strcmp(acks, "-1") && strcmp(acks, "1") && strcmp(acks, "0"))
                die("invalid value '%s' for --acks", acks);
            if (!strcmp(acks, "-1")) acks = "all";
        } else if (IS("-z", "--compression")) compression = VAL();
        else if (!strcmp(a, "--linger-ms")) linger_ms = (long)parse_int(a, VAL(), 0, 600000);
        else if (!strcmp(a, "--idempotent")) idempotent = parse_bool(a, VAL());
        else if (!strcmp(a, "--batch-bytes")) batch_bytes = (long)parse_int(a, VAL(), 1024, 64 << 20);
        else if (!strcmp(a, "--max-buffered")) max_buffered = (long)parse_int(a, VAL(), 1, 10000000);
        else if (!strcmp(a, "--sync")) sync_mode = 1;
        else if (!strcmp(a, "--warmup")) warmup = parse_int(a, VAL(), 0, 1000000000);
        else if (!strcmp(a, "--latency-every")) latency_every = (long)parse_int(a, VAL(), 0, 1000000000);
        else if (!strcmp(a, "--rate")) rate = parse_int(a, VAL(), 1, 10000000);
        else if (!strcmp(a, "--duration")) {
            const char *v = VAL();
            char *end;
            duration_s = strtod(v, &end);
            if (*end || end == v || duration_s < 0.01 || duration_s > 86400) die("invalid value '%s' for --duration", v);
        }
        else if (!strcmp(a, "--fetch-max-bytes")) fetch_max_bytes = (long)parse_int(a, VAL(), 1024, 256 << 20);
        else if (!strcmp(a, "--max-wait-ms")) max_wait_ms = (long)parse_int(a, VAL(), 1, 60000);
        else if (!strcmp(a, "--check-crcs")) check_crcs = parse_bool(a, VAL());
        else if (!strcmp(a, "--group")) group_id = VAL();
        else if (!strcmp(a, "--session-timeout-ms")) session_timeout_ms = (long)parse_int(a, VAL(), 1, 3600000);
        else if (!strcmp(a, "--assign")) assign_flag = 1;
        else if (!strcmp(a, "--threads")) show_threads = 1;
        else if (IS("-v", "--verbose")) verbose = 1;
        else if (!strcmp(a, "--debug")) debug_contexts = VAL();
        else if (IS("-h", "--help")) usage();
        else die("unknown option '%s'", a);
#undef IS
#undef VAL
    }
    if (!brokers) brokers = getenv("KLIFE_BROKERS");
    if (!brokers || !*brokers) die("missing -b HOST:PORT");
    if (!topic) die("missing -t TOPIC");
    if (group_id && assign_flag) die("--group and --assign exclude each other");
    if (duration_s >= 0 && !rate) die("--duration needs --rate");
    if (rate) {
        if (sync_mode) die("--rate and --sync exclude each other");
        if (warmup) die("--rate has its own 0.5 s warm-up; drop --warmup");
        if (records_given && duration_s >= 0) die("give -n or --duration, not both");
        if (!records_given) {
            long long n = (long long)((duration_s >= 0 ? duration_s : 5.0) * (double)rate + 0.5);
            records = n < 1 ? 1 : n;
        }
    }
    if (idempotent < 0) idempotent = !strcmp(acks, "all");
    if (idempotent && strcmp(acks, "all")) {
        fprintf(stderr, "rdkafka_bench: idempotence needs acks=all\n");
        exit(64);
    }
}

/* ---------- clocks ---------- */

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
}

/* ---------- per-thread CPU (/proc/self/task) ---------- */

#define MAX_THREADS 256
struct thread_cpu { int tid; char name[32]; uint64_t ns; };
struct thread_snapshot { int n; struct thread_cpu t[MAX_THREADS]; };

static void snapshot_threads(struct thread_snapshot *s) {
    s->n = 0;
    long ticks = sysconf(_SC_CLK_TCK);
    if (ticks <= 0) ticks = 100;
    DIR *d = opendir("/proc/self/task");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && s->n < MAX_THREADS) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300], buf[1024];
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0) continue;
        buf[n] = 0;
        char *open_paren = strchr(buf, '('), *close_paren = strrchr(buf, ')');
        if (!open_paren || !close_paren) continue;
        struct thread_cpu *t = &s->t[s->n];
        t->tid = atoi(e->d_name);
        size_t len = (size_t)(close_paren - open_paren - 1);
        if (len >= sizeof t->name) len = sizeof t->name - 1;
        memcpy(t->name, open_paren + 1, len);
        t->name[len] = 0;
        /* After ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
        char *p = close_paren + 2;
        unsigned long long utime = 0, stime = 0;
        if (sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) continue;
        t->ns = (utime + stime) * (1000000000ull / (unsigned long long)ticks);
        s->n++;
    }
    closedir(d);
}

static void print_thread_delta(const struct thread_snapshot *before, const struct thread_snapshot *after, long long n) {
    /* Sum by name. */
    char names[MAX_THREADS][32];
    uint64_t sums[MAX_THREADS];
    int k = 0;
    for (int i = 0; i < after->n; i++) {
        uint64_t prev = 0;
        for (int j = 0; j < before->n; j++)
            if (before->t[j].tid == after->t[i].tid) prev = before->t[j].ns;
        uint64_t used = after->t[i].ns > prev ? after->t[i].ns - prev : 0;
        int slot = -1;
        for (int j = 0; j < k; j++)
            if (!strcmp(names[j], after->t[i].name)) slot = j;
        if (slot < 0) { slot = k++; strcpy(names[slot], after->t[i].name); sums[slot] = 0; }
        sums[slot] += used;
    }
    fprintf(stderr, "rdkafka_bench: CPU per thread over the measured section (clock-tick resolution):\n");
    for (int round = 0; round < k; round++) {
        int best = -1;
        for (int j = 0; j < k; j++)
            if (sums[j] != UINT64_MAX && (best < 0 || sums[j] > sums[best])) best = j;
        if (best < 0 || sums[best] == 0) break;
        fprintf(stderr, "  %-20s  %.3f s  %.1f ns/record\n", names[best], sums[best] / 1e9, (double)sums[best] / (double)n);
        sums[best] = UINT64_MAX;
    }
}

/* ---------- result line ---------- */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile_us(const uint64_t *sorted, size_t n, double q) {
    double r = q * (double)n;
    long rank = (long)r;
    if ((double)rank < r) rank++; /* nearest rank: ceil(q * n) */
    rank -= 1;
    if (rank < 0) rank = 0;
    if ((size_t)rank >= n) rank = (long)n - 1;
    return (double)sorted[rank] / 1000.0;
}

/* Extra `,"key":value` pairs for the result line (already JSON), set by the mode. */
static char extra_json[256];

static void emit(const char *m, long long n, long size, int parts, uint64_t ns, uint64_t cpu, long long bytes,
                 uint64_t *lat, size_t nlat) {
    double s = ns / 1e9;
    printf("{\"client\":\"librdkafka\",\"mode\":\"%s\",\"records\":%lld,\"record_size\":%ld,\"partitions\":%d,"
           "\"seconds\":%.6f,\"records_per_sec\":%.1f,\"mb_per_sec\":%.3f,\"cpu_ns_per_record\":%.1f",
           m, n, size, parts, s, s > 0 ? n / s : 0.0, s > 0 ? bytes / 1e6 / s : 0.0, n > 0 ? (double)cpu / n : 0.0);
    if (nlat > 0) {
        qsort(lat, nlat, sizeof *lat, cmp_u64);
        printf(",\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"latency_samples\":%zu",
               percentile_us(lat, nlat, 0.50), percentile_us(lat, nlat, 0.99), percentile_us(lat, nlat, 0.999),
               (double)lat[nlat - 1] / 1000.0, nlat);
    }
    if (!strcmp(m, "produce"))
        printf(",\"acks\":\"%s\",\"compression\":\"%s\",\"linger_ms\":%ld,\"idempotent\":%s,\"sync\":%s", acks,
               compression, linger_ms, idempotent ? "true" : "false", sync_mode ? "true" : "false");
    printf("%s,\"version\":\"%s\"}\n", extra_json, rd_kafka_version_str());
    fflush(stdout);
}

/* ---------- configuration helpers ---------- */

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) die("config %s=%s: %s", k, v, err);
}

static void setl(rd_kafka_conf_t *conf, const char *k, long long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    set(conf, k, buf);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    if (level <= 4 || verbose) fprintf(stderr, "rdkafka_bench: librdkafka %s: %s\n", fac, buf);
}

static rd_kafka_conf_t *base_conf(void) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", brokers);
    set(conf, "client.id", "rdkafka-bench");
    /* Metadata lookups must not create topics (Tansu would use its default partition count). */
    set(conf, "allow.auto.create.topics", "false");
    /* Tansu answers ApiVersions; keep the default api.version.request=true. */
    rd_kafka_conf_set_log_cb(conf, log_cb);
    if (debug_contexts) {
        set(conf, "debug", debug_contexts);
        verbose = 1;
    }
    return conf;
}

/* ---------- topic creation (admin API) ---------- */

static int topic_partitions(rd_kafka_t *rk) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int count = -1;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) count = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    return count;
}

static int ensure_topic(rd_kafka_t *rk) {
    int have = topic_partitions(rk);
    if (have > 0) {
        if (have != partitions)
            fprintf(stderr, "rdkafka_bench: warning: topic '%s' exists with %d partitions (asked for %d); using it as is\n",
                    topic, have, partitions);
        return have;
    }
    char err[512];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, -1, err, sizeof err);
    if (!nt) die("NewTopic: %s", err);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev) die("CreateTopics: no answer in 30 s");
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    if (!res) die("CreateTopics: %s", rd_kafka_event_error_string(ev));
    size_t cnt;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
    for (size_t i = 0; i < cnt; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            die("CreateTopics %s: %s", topic, rd_kafka_topic_result_error_string(tr[i]));
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    for (int i = 0; i < 200; i++) {
        have = topic_partitions(rk);
        if (have == partitions) return have;
        usleep(25000);
    }
    die("topic '%s' not visible 5 s after creation", topic);
    return -1;
}

/* ---------- produce ---------- */

static long long delivered, failed;
static rd_kafka_resp_err_t first_error;
static uint64_t *latencies;
static size_t nlatencies, cap_latencies;
/* Open loop: record i is due at open_loop_start + i * 1e9 / rate ns; its opaque is i + 1. */
static uint64_t open_loop_start;

static uint64_t scheduled_ns(long long i) { return open_loop_start + (uint64_t)i * 1000000000ull / (uint64_t)rate; }

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk; (void)opaque;
    if (rate) {
        /* Open loop: every record, from its scheduled time; the counters are read by the
         * producing thread while the poller thread runs this. */
        long long i = (long long)(uintptr_t)m->_private - 1;
        latencies[i] = mono_ns() - scheduled_ns(i);
        if (m->err) {
            if (!first_error) first_error = m->err;
            __atomic_add_fetch(&failed, 1, __ATOMIC_RELEASE);
        } else {
            __atomic_add_fetch(&delivered, 1, __ATOMIC_RELEASE);
        }
        return;
    }
    if (m->err) {
        failed++;
        if (!first_error) first_error = m->err;
    } else {
        delivered++;
    }
    if (m->_private) {
        uint64_t took = mono_ns() - (uint64_t)(uintptr_t)m->_private;
        if (nlatencies < cap_latencies) latencies[nlatencies++] = took;
    }
}

/* Produces `n` records (indices from `base`). In sync mode each one is flushed and timed. */
static void produce_n(rd_kafka_t *rk, rd_kafka_topic_t *rkt, char *buf, long long base, long long n, long every,
                      int timed_sync) {
    long long target = delivered + failed + n;
    for (long long i = 0; i < n; i++) {
        uint64_t idx = (uint64_t)(base + i);
        if (record_size >= 8) memcpy(buf, &idx, 8);
        else if (record_size > 0) memcpy(buf, &idx, (size_t)record_size);
        void *opaque = NULL;
        uint64_t sent = 0;
        if (timed_sync) sent = mono_ns();
        else if (every > 0 && i % every == 0) opaque = (void *)(uintptr_t)mono_ns();
        while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, buf, (size_t)record_size, NULL, 0,
                                opaque) == -1) {
            rd_kafka_resp_err_t e = rd_kafka_last_error();
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) die("produce: %s", rd_kafka_err2str(e));
            rd_kafka_poll(rk, 1);
        }
        if (timed_sync) {
            while (delivered + failed < target - n + i + 1) rd_kafka_poll(rk, 1000);
            if (nlatencies < cap_latencies) latencies[nlatencies++] = mono_ns() - sent;
        } else if ((i & 1023) == 0) {
            rd_kafka_poll(rk, 0);
        }
    }
    while (rd_kafka_outq_len(rk) > 0 || delivered + failed < target) rd_kafka_flush(rk, 100);
}

/* Open loop: serves delivery reports as they arrive until told to stop. */
static volatile int poller_stop;

static void *poller_main(void *arg) {
    rd_kafka_t *rk = arg;
    while (!__atomic_load_n(&poller_stop, __ATOMIC_ACQUIRE)) rd_kafka_poll(rk, 100);
    return NULL;
}

static void sleep_until(uint64_t deadline) {
    struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000ull), .tv_nsec = (long)(deadline % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

/* --rate: the open-loop schedule (see the header). Emits the result line itself. */
enum { MIN_SLEEP_NS = 50000 };

static int run_open_loop(rd_kafka_t *rk, rd_kafka_topic_t *rkt, char *buf, int parts) {
    long long warm = (long long)((double)rate * 0.5);
    long long total = warm + records;
    latencies = calloc((size_t)total, sizeof *latencies);
    if (!latencies) die("out of memory for %lld latencies", total);
    pthread_t poller;
    if (pthread_create(&poller, NULL, poller_main, rk)) die("pthread_create failed");
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    struct thread_snapshot *tb = malloc(sizeof *tb), *ta = malloc(sizeof *ta);
    uint64_t c0 = 0, lag_sum = 0, lag_max = 0;
    open_loop_start = mono_ns() + 1000000;
    long long i = 0;
    while (i < total) {
        uint64_t now = mono_ns();
        while (i < total && scheduled_ns(i) <= now) {
            if (i == warm) {
                if (show_threads) snapshot_threads(tb);
                c0 = cpu_ns();
            }
            uint64_t idx = (uint64_t)i;
            if (record_size >= 8) memcpy(buf, &idx, 8);
            else if (record_size > 0) memcpy(buf, &idx, (size_t)record_size);
            uint64_t sent;
            for (;;) {
                sent = mono_ns();
                if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, buf, (size_t)record_size, NULL, 0,
                                     (void *)(uintptr_t)(i + 1)) == 0)
                    break;
                rd_kafka_resp_err_t e = rd_kafka_last_error();
                if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) die("produce: %s", rd_kafka_err2str(e));
                sleep_until(mono_ns() + MIN_SLEEP_NS);
            }
            if (i >= warm) {
                uint64_t lag = sent - scheduled_ns(i);
                lag_sum += lag;
                if (lag > lag_max) lag_max = lag;
            }
            i++;
        }
        if (i >= total) break;
        uint64_t awake = mono_ns(), next = scheduled_ns(i);
        if (next > awake) sleep_until(next > awake + MIN_SLEEP_NS ? next : awake + MIN_SLEEP_NS);
    }
    uint64_t deadline = mono_ns() + 60000000000ull;
    while (__atomic_load_n(&delivered, __ATOMIC_ACQUIRE) + __atomic_load_n(&failed, __ATOMIC_ACQUIRE) < total) {
        if (mono_ns() > deadline) die("%lld of %lld records never completed", total - delivered - failed, total);
        usleep(1000);
    }
    uint64_t c1 = cpu_ns();
    snapshot_threads(ta);
    __atomic_store_n(&poller_stop, 1, __ATOMIC_RELEASE);
    pthread_join(poller, NULL);
    if (show_threads) print_thread_delta(tb, ta, records);
    if (failed) die("%lld of %lld records failed: first error %s", failed, total, rd_kafka_err2str(first_error));
    uint64_t measured_start = scheduled_ns(warm), last_ack = measured_start;
    for (long long k = warm; k < total; k++) {
        uint64_t acked = scheduled_ns(k) + latencies[k];
        if (acked > last_ack) last_ack = acked;
    }
    snprintf(extra_json, sizeof extra_json, ",\"target_rate\":%lld,\"send_lag_mean_us\":%.1f,\"send_lag_max_us\":%.1f",
             rate, records > 0 ? (double)lag_sum / (double)records / 1000.0 : 0.0, (double)lag_max / 1000.0);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    emit("produce", records, record_size, parts, last_ack - measured_start, c1 - c0, records * (long long)record_size,
         latencies + warm, (size_t)records);
    return 0;
}

static int run_produce(void) {
    rd_kafka_conf_t *conf = base_conf();
    set(conf, "acks", acks);
    set(conf, "enable.idempotence", idempotent ? "true" : "false");
    set(conf, "compression.type", compression);
    setl(conf, "linger.ms", linger_ms);
    setl(conf, "batch.size", batch_bytes);
    /* klife has no per-batch record count limit: let batch.size govern. */
    set(conf, "batch.num.messages", "1000000");
    /* Same buffer bounds as klife's defaults: 1,000,000 records, 512 MiB. */
    setl(conf, "queue.buffering.max.messages", max_buffered);
    set(conf, "queue.buffering.max.kbytes", "524288");
    /* klife: 5 requests in flight per broker, 8 MiB requests. */
    set(conf, "max.in.flight.requests.per.connection", "5");
    setl(conf, "message.max.bytes", batch_bytes > 8388608 ? batch_bytes : 8388608);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("rd_kafka_new: %s", err);
    int parts = ensure_topic(rk);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    char *buf = malloc((size_t)record_size + 8);
    for (long i = 0; i < record_size; i++) buf[i] = (char)('a' + i % 26);
    if (rate) return run_open_loop(rk, rkt, buf, parts);

    if (warmup > 0) produce_n(rk, rkt, buf, 0, warmup, 0, 0);
    if (failed) die("%lld warmup records failed: %s", failed, rd_kafka_err2str(first_error));
    delivered = failed = 0;
    cap_latencies = sync_mode ? (size_t)records : (latency_every > 0 ? (size_t)(records / latency_every + 1) : 0);
    latencies = cap_latencies ? malloc(cap_latencies * sizeof *latencies) : NULL;

    struct thread_snapshot *tb = malloc(sizeof *tb), *ta = malloc(sizeof *ta);
    snapshot_threads(tb);
    uint64_t t0 = mono_ns(), c0 = cpu_ns();
    produce_n(rk, rkt, buf, warmup, records, latency_every, sync_mode);
    uint64_t c1 = cpu_ns(), t1 = mono_ns();
    snapshot_threads(ta);
    if (show_threads) print_thread_delta(tb, ta, records);

    if (failed) die("%lld of %lld records failed: first error %s", failed, records, rd_kafka_err2str(first_error));
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    emit("produce", records, record_size, parts, t1 - t0, c1 - c0, records * (long long)record_size, latencies,
         nlatencies);
    return 0;
}

/* ---------- consume ---------- */

/* --group: the measured section starts when the assignment arrives (set once). */
static struct {
    int set;
    uint64_t wall, cpu;
    struct thread_snapshot *threads;
} start_mark;

/* Takes the assignment the way librdkafka would without a callback (assign, or the
 * incremental calls under a cooperative assignor), starting the clock on the first one. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
    (void)opaque;
    int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (!start_mark.set && parts->cnt > 0) {
            snapshot_threads(start_mark.threads);
            start_mark.wall = mono_ns();
            start_mark.cpu = cpu_ns();
            start_mark.set = 1;
        }
        if (cooperative) error = rd_kafka_incremental_assign(rk, parts);
        else e = rd_kafka_assign(rk, parts);
    } else {
        if (cooperative) error = rd_kafka_incremental_unassign(rk, parts);
        else e = rd_kafka_assign(rk, NULL);
    }
    if (error) die("rebalance (%s): %s", rd_kafka_err2name(err), rd_kafka_error_string(error));
    if (e) die("rebalance (%s): %s", rd_kafka_err2name(err), rd_kafka_err2str(e));
}

static int run_consume(void) {
    rd_kafka_conf_t *conf = base_conf();
    /* Without --group only assign() is used (the consumer API still needs a group id). */
    set(conf, "group.id", group_id ? group_id : "rdkafka-bench");
    if (group_id) {
        setl(conf, "session.timeout.ms", session_timeout_ms);
        /* As klife's bench: heartbeats at most a third of the session timeout apart. */
        long heartbeat = session_timeout_ms / 3;
        setl(conf, "heartbeat.interval.ms", heartbeat < 1 ? 1 : heartbeat > 3000 ? 3000 : heartbeat);
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    }
    set(conf, "enable.auto.commit", "false");
    set(conf, "enable.auto.offset.store", "false");
    set(conf, "enable.partition.eof", "false");
    set(conf, "auto.offset.reset", "earliest");
    setl(conf, "fetch.max.bytes", fetch_max_bytes);
    setl(conf, "max.partition.fetch.bytes", fetch_max_bytes);
    setl(conf, "receive.message.max.bytes", fetch_max_bytes + 1048576 > 100000000 ? fetch_max_bytes + 1048576 : 100000000);
    setl(conf, "fetch.wait.max.ms", max_wait_ms);
    set(conf, "check.crcs", check_crcs ? "true" : "false");
    /* librdkafka pauses a partition's fetching for fetch.queue.backoff.ms (default 1 s)
     * once its local queue holds queued.min.messages (default 100,000) — reached at once
     * with compressed 100-byte records, which costs a whole second of idling. klife has no
     * such pause (it keeps one fetch ahead per partition), so lift the thresholds. */
    set(conf, "queued.min.messages", "10000000");
    set(conf, "queued.max.messages.kbytes", "2097151");
    set(conf, "fetch.queue.backoff.ms", "10");
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) die("rd_kafka_new: %s", err);
    int parts = topic_partitions(rk);
    if (parts <= 0) die("topic '%s' does not exist", topic);

    /* Start offsets: each partition's low watermark. (The high watermark Tansu 0.6 reports
     * through ListOffsets is the last batch's base offset, so it cannot tell how many records
     * there are; a run that finds too few stops after 10 s without records.) */
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++) {
        int64_t low = 0, high = 0;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, p, &low, &high, 10000);
        if (e) die("watermarks %s/%d: %s", topic, p, rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_add(list, topic, p)->offset = low;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
    enum { BATCH = 10000 };
    rd_kafka_message_t **msgs = malloc(BATCH * sizeof *msgs);

    struct thread_snapshot *tb = malloc(sizeof *tb), *ta = malloc(sizeof *ta);
    start_mark.threads = tb;
    snapshot_threads(tb);
    uint64_t t0 = mono_ns(), c0 = cpu_ns();
    uint64_t subscribed_at = t0;
    if (group_id) {
        rd_kafka_topic_partition_list_t *subscription = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(subscription, topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, subscription);
        if (e) die("subscribe: %s", rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_destroy(subscription);
    } else {
        rd_kafka_resp_err_t e = rd_kafka_assign(rk, list);
        if (e) die("assign: %s", rd_kafka_err2str(e));
    }
    long long got = 0, bytes = 0;
    uint64_t sum = 0;
    int idle = 0;
    while (got < records) {
        /* Serves the rebalance callback too. */
        ssize_t n = rd_kafka_consume_batch_queue(q, 1000, msgs, BATCH);
        if (n < 0) die("consume: %s", rd_kafka_err2str(rd_kafka_last_error()));
        /* A group join takes a while (Tansu holds it for half the session timeout). */
        if (n == 0 && ++idle >= (got > 0 ? 10 : 120)) die("no records for %d s after %lld of %lld: topic '%s' holds too few?", idle, got, records, topic);
        if (n > 0) idle = 0;
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    fprintf(stderr, "rdkafka_bench: consume error: %s\n", rd_kafka_message_errstr(m));
            } else if (got < records) {
                if (m->len > 0) {
                    const unsigned char *v = m->payload;
                    sum += (uint64_t)m->len + v[0] + v[m->len - 1];
                    bytes += (long long)m->len;
                }
                got++;
            }
            rd_kafka_message_destroy(m);
        }
    }
    uint64_t c1 = cpu_ns(), t1 = mono_ns();
    snapshot_threads(ta);
    if (show_threads) print_thread_delta(tb, ta, records);
    fprintf(stderr, "rdkafka_bench: read %lld records, %lld value bytes, checksum %" PRIu64 "\n", got, bytes, sum);
    if (group_id) {
        if (!start_mark.set) die("records arrived without an assignment");
        double join = (double)(start_mark.wall - subscribed_at) / 1e9;
        fprintf(stderr, "rdkafka_bench: joined group '%s' after %.2f s\n", group_id, join);
        snprintf(extra_json, sizeof extra_json, ",\"join_seconds\":%.3f,\"consumer\":\"group\"", join);
        t0 = start_mark.wall;
        c0 = start_mark.cpu;
    } else {
        snprintf(extra_json, sizeof extra_json, ",\"consumer\":\"assign\"");
    }

    rd_kafka_queue_destroy(q);
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    emit("consume", got, got > 0 ? (long)(bytes / got) : 0, parts, t1 - t0, c1 - c0, bytes, NULL, 0);
    return 0;
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    if (verbose) fprintf(stderr, "rdkafka_bench: librdkafka %s\n", rd_kafka_version_str());
    return !strcmp(mode, "produce") ? run_produce() : run_consume();
}
