/*
 * sandbox_fc_api.c - the client of Firecracker's REST API.
 *
 * Firecracker serves an HTTP/1.1 API on a unix socket (its --api-sock);
 * the requests and bodies follow its OpenAPI description,
 * src/firecracker/swagger/firecracker.yaml in the Firecracker
 * repository.  Before boot the driver sends, in this order:
 *
 *   PUT /machine-config       {"vcpu_count", "mem_size_mib", "smt": false}
 *   PUT /boot-source          {"kernel_image_path", "initrd_path",
 *                              "boot_args"}
 *   PUT /drives/workspace     {"drive_id", "path_on_host",
 *                              "is_root_device": false, "is_read_only"}
 *   PUT /network-interfaces/eth0  {"iface_id", "host_dev_name"
 *                              [, "guest_mac"]}   (only with a tap device)
 *   PUT /vsock                {"guest_cid", "uds_path"}
 *   PUT /entropy              {}  (a virtio-rng device fed by the host)
 *   PUT /actions              {"action_type": "InstanceStart"}
 *
 * Every call returns 204 No Content on success.  A failure is 400 (bad
 * input) or another status with the body {"fault_message": "..."}; the
 * error names the call and carries the fault message.
 *
 * Snapshots use PATCH /vm {"state": "Paused"}, PUT /snapshot/create and,
 * in a fresh Firecracker, PUT /snapshot/load.
 *
 * NOTE: these calls are tested against recorded fixtures written from the
 * API description (tests/fixtures/firecracker), not against a running
 * Firecracker, which cannot be installed on the development host.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "sandbox_fc_internal.h"

/* Bytes of a response body kept for the error message. */
#define NU__FC_BODY_MAX 4096

static pthread_once_t nu__fc_curl_once = PTHREAD_ONCE_INIT;

static void nu__fc_curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int64_t nu__fc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- waiting for the socket ------------------------------------------- */

static bool nu__fc_can_connect(const char *socket_path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd;
    bool ok;

    if (strlen(socket_path) >= sizeof addr.sun_path)
        return false;
    memcpy(addr.sun_path, socket_path, strlen(socket_path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    ok = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    close(fd);
    return ok;
}

int nu__fc_api_wait(const char *socket_path, int pidfd, int timeout_ms,
                    nu_err_t *err)
{
    int64_t deadline = nu__fc_now_ms() + timeout_ms;

    if (strlen(socket_path) >= NU__FC_SOCKET_MAX)
        return nu_err_set(err, NU_EINVAL, "firecracker: cannot use API "
                          "socket %s: the path is longer than %d bytes",
                          socket_path, NU__FC_SOCKET_MAX - 1);
    for (;;) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };

        if (nu__fc_can_connect(socket_path))
            return NU_OK;
        if (nu__fc_now_ms() >= deadline)
            return nu_err_set(err, NU_ETIMEDOUT, "firecracker: cannot "
                              "connect to the API socket %s: it did not "
                              "appear within %d ms", socket_path,
                              timeout_ms);
        if (pidfd >= 0 && poll(&p, 1, 5) > 0)
            return nu_err_set(err, NU_ESANDBOX, "firecracker: the process "
                              "exited before its API socket %s appeared",
                              socket_path);
        if (pidfd < 0)
            nanosleep(&(struct timespec){ .tv_nsec = 5000000 }, NULL);
    }
}

/* --- one request ------------------------------------------------------ */

typedef struct nu__fc_body_buf {
    char data[NU__FC_BODY_MAX + 1];
    size_t len;
} nu__fc_body_buf_t;

static size_t nu__fc_on_body(char *ptr, size_t size, size_t nmemb,
                             void *arg)
{
    nu__fc_body_buf_t *buf = arg;
    size_t n = size * nmemb;
    size_t room = NU__FC_BODY_MAX - buf->len;
    size_t take = n < room ? n : room;

    memcpy(buf->data + buf->len, ptr, take);
    buf->len += take;
    buf->data[buf->len] = '\0';
    return n;  /* the rest is dropped, not an error */
}

/* Turn a failed call's status and body into err. */
static int nu__fc_status_error(const char *method, const char *path,
                               long status, const nu__fc_body_buf_t *body,
                               nu_err_t *err)
{
    json_t *json = json_loadb(body->data, body->len, 0, NULL);
    const char *fault = json_string_value(json_object_get(json,
                                                          "fault_message"));
    int rc;

    if (status >= 400 && status <= 599)
        rc = nu_err_set(err, NU_ESANDBOX, "firecracker: cannot %s %s: HTTP "
                        "%ld: %s", method, path, status, fault != NULL ?
                        fault : body->len > 0 ? body->data :
                        "no fault_message in the response");
    else
        rc = nu_err_set(err, NU_EPROTO, "firecracker: cannot %s %s: "
                        "unexpected HTTP status %ld (expected 204)", method,
                        path, status);
    json_decref(json);
    return rc;
}

int nu__fc_api_call(const char *socket_path, const char *method,
                    const char *path, const json_t *body, int timeout_ms,
                    nu_err_t *err)
{
    struct curl_slist *headers = NULL;
    nu__fc_body_buf_t *response = NULL;
    char url[512];
    char *text = NULL;
    CURLcode code;
    CURL *curl;
    long status = 0;
    int rc = NU_OK;

    pthread_once(&nu__fc_curl_once, nu__fc_curl_init);
    curl = curl_easy_init();
    response = calloc(1, sizeof *response);
    text = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS)
                        : strdup("");
    if (curl == NULL || response == NULL || text == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "firecracker: out of memory");
        goto out;
    }
    /* The host name is never resolved: the request goes to the socket. */
    snprintf(url, sizeof url, "http://localhost%s", path);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "Expect:");

    curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket_path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, nu__fc_on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, response);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);

    code = curl_easy_perform(curl);
    if (code != CURLE_OK) {
        rc = nu_err_set(err, code == CURLE_OPERATION_TIMEDOUT ?
                        NU_ETIMEDOUT : NU_EIO, "firecracker: cannot %s %s "
                        "on %s: %s", method, path, socket_path,
                        curl_easy_strerror(code));
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 204 && status != 200)
        rc = nu__fc_status_error(method, path, status, response, err);

out:
    curl_slist_free_all(headers);
    if (curl != NULL)
        curl_easy_cleanup(curl);
    free(response);
    free(text);
    return rc;
}

/* --- request bodies --------------------------------------------------- */

json_t *nu__fc_body_machine(const nu__fc_config_t *cfg)
{
    return json_pack("{s:I,s:I,s:b}", "vcpu_count", (json_int_t)cfg->vcpus,
                     "mem_size_mib", (json_int_t)cfg->mem_mib, "smt", 0);
}

json_t *nu__fc_body_boot(const nu__fc_config_t *cfg)
{
    return json_pack("{s:s,s:s,s:s}", "kernel_image_path", cfg->kernel,
                     "initrd_path", cfg->initrd, "boot_args",
                     cfg->boot_args);
}

json_t *nu__fc_body_drive(const nu__fc_config_t *cfg)
{
    return json_pack("{s:s,s:s,s:b,s:b}", "drive_id", "workspace",
                     "path_on_host", cfg->workspace_image, "is_root_device",
                     0, "is_read_only", cfg->workspace_read_only);
}

json_t *nu__fc_body_network(const nu__fc_config_t *cfg)
{
    json_t *body = json_pack("{s:s,s:s}", "iface_id", "eth0",
                             "host_dev_name", cfg->tap);

    if (body != NULL && cfg->guest_mac[0] != '\0' &&
        json_object_set_new(body, "guest_mac",
                            json_string(cfg->guest_mac)) != 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

json_t *nu__fc_body_vsock(const nu__fc_config_t *cfg)
{
    return json_pack("{s:I,s:s}", "guest_cid", (json_int_t)cfg->guest_cid,
                     "uds_path", cfg->vsock_uds);
}

/* PUT path with body (a new reference, consumed; NULL means out of
 * memory). */
static int nu__fc_put(const char *socket_path, const char *path,
                      json_t *body, int timeout_ms, nu_err_t *err)
{
    int rc;

    if (body == NULL)
        return nu_err_set(err, NU_ENOMEM, "firecracker: out of memory");
    rc = nu__fc_api_call(socket_path, "PUT", path, body, timeout_ms, err);
    json_decref(body);
    return rc;
}

int nu__fc_configure(const char *socket_path, const nu__fc_config_t *cfg,
                     int timeout_ms, nu_err_t *err)
{
    int rc;

    rc = nu__fc_put(socket_path, "/machine-config", nu__fc_body_machine(cfg),
                    timeout_ms, err);
    if (rc == NU_OK)
        rc = nu__fc_put(socket_path, "/boot-source", nu__fc_body_boot(cfg),
                        timeout_ms, err);
    if (rc == NU_OK)
        rc = nu__fc_put(socket_path, "/drives/workspace",
                        nu__fc_body_drive(cfg), timeout_ms, err);
    if (rc == NU_OK && cfg->tap[0] != '\0')
        rc = nu__fc_put(socket_path, "/network-interfaces/eth0",
                        nu__fc_body_network(cfg), timeout_ms, err);
    if (rc == NU_OK)
        rc = nu__fc_put(socket_path, "/vsock", nu__fc_body_vsock(cfg),
                        timeout_ms, err);
    /* The guest agent credits entropy read from this virtio-rng device to
     * its pool before it accepts the host's connection. */
    if (rc == NU_OK)
        rc = nu__fc_put(socket_path, "/entropy", json_object(), timeout_ms,
                        err);
    if (rc == NU_OK)
        rc = nu__fc_put(socket_path, "/actions",
                        json_pack("{s:s}", "action_type", "InstanceStart"),
                        timeout_ms, err);
    return rc;
}

/* --- snapshots -------------------------------------------------------- */

int nu__fc_snapshot_create(const char *socket_path, const char *state_path,
                           const char *mem_path, int timeout_ms,
                           nu_err_t *err)
{
    json_t *body = json_pack("{s:s}", "state", "Paused");
    int rc;

    if (body == NULL)
        return nu_err_set(err, NU_ENOMEM, "firecracker: out of memory");
    rc = nu__fc_api_call(socket_path, "PATCH", "/vm", body, timeout_ms, err);
    json_decref(body);
    if (rc < 0)
        return rc;
    return nu__fc_put(socket_path, "/snapshot/create",
                      json_pack("{s:s,s:s,s:s}", "snapshot_type", "Full",
                                "snapshot_path", state_path, "mem_file_path",
                                mem_path), timeout_ms, err);
}

int nu__fc_snapshot_load(const char *socket_path, const char *state_path,
                         const char *mem_path, const char *vsock_uds,
                         int timeout_ms, nu_err_t *err)
{
    json_t *body = json_pack("{s:s,s:{s:s,s:s},s:b}", "snapshot_path",
                             state_path, "mem_backend", "backend_type",
                             "File", "backend_path", mem_path, "resume_vm",
                             1);

    if (body != NULL && vsock_uds != NULL &&
        json_object_set_new(body, "vsock_override",
                            json_pack("{s:s}", "uds_path", vsock_uds)) != 0) {
        json_decref(body);
        body = NULL;
    }
    /* NOTE: a restored guest keeps the entropy pool of the snapshot.  The
     * agent has no request to reseed it yet, so pods do not use
     * snapshots. */
    return nu__fc_put(socket_path, "/snapshot/load", body, timeout_ms, err);
}
