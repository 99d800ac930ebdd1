(module
  ;; conditional_trap: proxy_on_request_headers executes unreachable when the
  ;; request carries the header "x-trap", and otherwise adds "x-wat: ok" and
  ;; returns CONTINUE; proxy_on_request_headers is its only HTTP callback.
  ;; Expected: the trapping request fails under its failure policy and the
  ;; instance is discarded; requests that arrive afterwards never fail or
  ;; skip the plugin because of it (the spare takes the slot), and a request
  ;; already past proxy_on_request_headers on that instance does not fail.
  (import "env" "proxy_get_header_map_value" (func $proxy_get_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $proxy_add_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; Static data: 16 "x-wat", 32 "ok", 48 ":path", 64 "x-trap"; 512..527
  ;; scratch for ret_* outputs; 4096.. per-request bump heap for
  ;; proxy_on_memory_allocate.
  (data (i32.const 16) "x-wat")
  (data (i32.const 32) "ok")
  (data (i32.const 48) ":path")
  (data (i32.const 64) "x-trap")
  (global $heap (mut i32) (i32.const 4096))
  ;; status holds the last host-call status (-1: no call made yet).
  (global $status (export "status") (mut i32) (i32.const -1))
  (func (export "proxy_abi_version_0_2_1"))
  ;; Bump allocator: returns 0 when the request does not fit in memory; the
  ;; heap is reset for every new HTTP context.
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (if (i32.gt_u (local.get $size)
                  (i32.sub (i32.mul (memory.size) (i32.const 65536)) (local.get $p)))
      (then (return (i32.const 0))))
    (global.set $heap
      (i32.and (i32.add (i32.add (local.get $p) (local.get $size)) (i32.const 7))
               (i32.const -8)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param $id i32) (param $parent i32)
    (if (local.get $parent) (then (global.set $heap (i32.const 4096)))))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    ;; OK (0) means the header is present.
    (if (i32.eqz (call $proxy_get_header_map_value (i32.const 0) (i32.const 64) (i32.const 6) (i32.const 512) (i32.const 516)))
      (then unreachable))
    (global.set $status (call $proxy_add_header_map_value (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 32) (i32.const 2)))
    (i32.const 0))
)
