(module
  ;; upstream_hosts_root: proxy_get_upstream_hosts from proxy_on_configure (the
  ;; root context: no request). Expected: NOT_FOUND (1), stored in "status".
  (import "env" "proxy_get_upstream_hosts" (func $proxy_get_upstream_hosts (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; Static data: 16 "x-wat", 32 "ok", 64 "redis.static", 96 "nope",
  ;; 128 a valid query (PING), 160 a malformed one (length 9 for 4 bytes);
  ;; 512..527 scratch for ret_* outputs; 4096.. bump heap.
  (data (i32.const 16) "x-wat")
  (data (i32.const 32) "ok")
  (data (i32.const 64) "redis.static")
  (data (i32.const 96) "nope")
  (data (i32.const 128) "*1\0d\0a$4\0d\0aPING\0d\0a")
  (data (i32.const 160) "*1\0d\0a$9\0d\0aPING\0d\0a")
  (global $heap (mut i32) (i32.const 4096))
  ;; status holds the last host-call status (-1: no call made yet).
  (global $status (export "status") (mut i32) (i32.const -1))
  (func (export "proxy_abi_version_0_2_100"))
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
    (global.set $status (call $proxy_get_upstream_hosts (i32.const 512) (i32.const 516)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (nop)
    (i32.const 0))
)
