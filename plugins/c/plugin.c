// Sluice test plugin written in C against the raw Proxy-Wasm ABI v0.2.1,
// with no SDK. It mirrors plugins/assemblyscript so that tests can compare
// guests built with different toolchains.
//
// Build (Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32):
//
//   clang --target=wasm32-wasi -O2 -mexec-model=reactor -o plugin.wasm plugin.c
//
// The plugin configuration (a plain string) selects a mode:
//
//   "" or "policy"  (default) requests whose :path starts with /forbidden get
//                   a local 403 "forbidden by c" and PAUSE; every response
//                   gets "x-sluice-guest: c".
//   "headers-only"  every request gets one added header "x-bench: 1" (for
//                   benchmarks); nothing else.
//
// Any other configuration makes proxy_on_configure return 0 (failure).
// The mode is global: one plugin configuration per module instance.

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))
// UNUSED marks a callback parameter the plugin does not need (the ABI
// fixes every callback's signature).
#define UNUSED __attribute__((unused))

// Status, action and enum values from the v0.2.1 specification.
enum { STATUS_OK = 0 };
enum { ACTION_CONTINUE = 0, ACTION_PAUSE = 1 };
enum { LOG_INFO = 2, LOG_ERROR = 4 };
enum { MAP_REQUEST_HEADERS = 0, MAP_RESPONSE_HEADERS = 2 };
enum { BUFFER_PLUGIN_CONFIGURATION = 7 };

// ---- host functions (module "env"); every one returns a proxy_status_t ----

IMPORT(proxy_log)
uint32_t proxy_log(uint32_t level, const char *msg, size_t msg_size);

IMPORT(proxy_get_buffer_bytes)
uint32_t proxy_get_buffer_bytes(uint32_t buffer_id, size_t start, size_t max_size,
                                uint8_t **ret_data, size_t *ret_size);

IMPORT(proxy_get_header_map_value)
uint32_t proxy_get_header_map_value(uint32_t map_id, const char *key, size_t key_size,
                                    char **ret_value, size_t *ret_size);

IMPORT(proxy_add_header_map_value)
uint32_t proxy_add_header_map_value(uint32_t map_id, const char *key, size_t key_size,
                                    const char *value, size_t value_size);

IMPORT(proxy_send_local_response)
uint32_t proxy_send_local_response(uint32_t status_code, const char *details, size_t details_size,
                                   const uint8_t *body, size_t body_size,
                                   const uint8_t *headers, size_t headers_size,
                                   int32_t grpc_status);

// ---- helpers ----

#define STR(s) (s), (sizeof(s) - 1)

#define GUEST "c"
#define FORBIDDEN_PREFIX "/forbidden"

enum mode { MODE_POLICY, MODE_HEADERS_ONLY };

static enum mode current_mode = MODE_POLICY;

static void log_msg(uint32_t level, const char *msg) {
    proxy_log(level, msg, strlen(msg));
}

// equals reports whether data[0:size] is exactly the NUL-terminated word.
static int equals(const uint8_t *data, size_t size, const char *word) {
    size_t n = strlen(word);
    return size == n && memcmp(data, word, n) == 0;
}

// trim narrows *data/*size to exclude ASCII whitespace at both ends.
static void trim(const uint8_t **data, size_t *size) {
    while (*size > 0 && ((*data)[0] == ' ' || (*data)[0] == '\t' ||
                         (*data)[0] == '\n' || (*data)[0] == '\r')) {
        (*data)++;
        (*size)--;
    }
    while (*size > 0) {
        uint8_t c = (*data)[*size - 1];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            break;
        }
        (*size)--;
    }
}

// ---- callbacks ----

// The ABI version marker; never called.
EXPORT(proxy_abi_version_0_2_1)
void proxy_abi_version_0_2_1(void) {}

// Host allocations for ret_* outputs come from the guest's malloc; the
// plugin frees them with free().
EXPORT(proxy_on_memory_allocate)
void *proxy_on_memory_allocate(size_t size) {
    return malloc(size);
}

EXPORT(proxy_on_context_create)
void proxy_on_context_create(UNUSED uint32_t context_id, UNUSED uint32_t parent_context_id) {}

EXPORT(proxy_on_vm_start)
uint32_t proxy_on_vm_start(UNUSED uint32_t root_context_id, UNUSED size_t vm_config_size) {
    return 1;
}

EXPORT(proxy_on_configure)
uint32_t proxy_on_configure(UNUSED uint32_t root_context_id, size_t config_size) {
    uint8_t *config = NULL;
    size_t size = 0;
    if (config_size > 0) {
        uint32_t st = proxy_get_buffer_bytes(BUFFER_PLUGIN_CONFIGURATION, 0, config_size,
                                             &config, &size);
        if (st != STATUS_OK) {
            log_msg(LOG_ERROR, "sluice-c: cannot read plugin configuration");
            return 0;
        }
    }
    const uint8_t *word = config;
    trim(&word, &size);
    uint32_t ok = 1;
    if (size == 0 || equals(word, size, "policy")) {
        current_mode = MODE_POLICY;
    } else if (equals(word, size, "headers-only")) {
        current_mode = MODE_HEADERS_ONLY;
    } else {
        log_msg(LOG_ERROR, "sluice-c: unknown configuration; want \"\", \"policy\" or \"headers-only\"");
        ok = 0;
    }
    free(config);
    return ok;
}

EXPORT(proxy_on_request_headers)
uint32_t proxy_on_request_headers(UNUSED uint32_t context_id, UNUSED size_t num_headers,
                                  UNUSED uint32_t end_of_stream) {
    if (current_mode == MODE_HEADERS_ONLY) {
        proxy_add_header_map_value(MAP_REQUEST_HEADERS, STR("x-bench"), STR("1"));
        return ACTION_CONTINUE;
    }
    char *path = NULL;
    size_t path_size = 0;
    uint32_t st = proxy_get_header_map_value(MAP_REQUEST_HEADERS, STR(":path"), &path, &path_size);
    size_t prefix = sizeof(FORBIDDEN_PREFIX) - 1;
    int forbidden = st == STATUS_OK && path_size >= prefix &&
                    memcmp(path, FORBIDDEN_PREFIX, prefix) == 0;
    free(path);
    if (!forbidden) {
        return ACTION_CONTINUE;
    }
    static const char body[] = "forbidden by " GUEST;
    st = proxy_send_local_response(403, STR("sluice_guest_forbidden"),
                                   (const uint8_t *)body, sizeof(body) - 1,
                                   NULL, 0, -1);
    if (st != STATUS_OK) {
        log_msg(LOG_ERROR, "sluice-c: proxy_send_local_response failed");
    }
    return ACTION_PAUSE;
}

EXPORT(proxy_on_response_headers)
uint32_t proxy_on_response_headers(UNUSED uint32_t context_id, UNUSED size_t num_headers,
                                   UNUSED uint32_t end_of_stream) {
    if (current_mode == MODE_POLICY) {
        proxy_add_header_map_value(MAP_RESPONSE_HEADERS, STR("x-sluice-guest"), STR(GUEST));
    }
    return ACTION_CONTINUE;
}

EXPORT(proxy_on_done)
uint32_t proxy_on_done(UNUSED uint32_t context_id) {
    return 1;
}

EXPORT(proxy_on_delete)
void proxy_on_delete(UNUSED uint32_t context_id) {}
