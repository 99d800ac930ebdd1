(module
  ;; no_memory: defines and exports no memory at all (and has no allocator).
  ;; Expected: refused at load with an error naming the missing "memory" export.
  ;; status holds the last host-call status (-1: no call made yet).
  (global $status (export "status") (mut i32) (i32.const -1))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param $id i32) (param $parent i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (nop)
    (i32.const 0))
)
