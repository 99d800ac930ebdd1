(module
  ;; trap_memory_allocate: proxy_on_memory_allocate traps (unreachable).
  ;; proxy_on_request_headers asks for ":path" with proxy_get_header_map_value,
  ;; which makes the host call proxy_on_memory_allocate. Expected: the trap
  ;; inside the host call fails proxy_on_request_headers and the instance is
  ;; discarded.
  (import "env" "proxy_get_header_map_value" (func $proxy_get_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; Static data: 16 "x-wat", 32 "ok", 48 ":path"; 512..527 scratch for ret_*
  ;; outputs; 4096.. per-request bump heap for proxy_on_memory_allocate.
  (data (i32.const 16) "x-wat")
  (data (i32.const 32) "ok")
  (data (i32.const 48) ":path")
  (global $heap (mut i32) (i32.const 4096))
  ;; status holds the last host-call status (-1: no call made yet).
  (global $status (export "status") (mut i32) (i32.const -1))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32)
    (unreachable))
  (func (export "proxy_on_context_create") (param $id i32) (param $parent i32)
    (if (local.get $parent) (then (global.set $heap (i32.const 4096)))))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (global.set $status (call $proxy_get_header_map_value (i32.const 0) (i32.const 48) (i32.const 5) (i32.const 512) (i32.const 516)))
    (i32.const 0))
)
