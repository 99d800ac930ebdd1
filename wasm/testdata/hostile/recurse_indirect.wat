(module
  ;; recurse_indirect: proxy_on_request_headers calls f(8 × num_headers);
  ;; f(n) calls itself twice through call_indirect (table slot 0):
  ;; 2^(depth+1) - 1 calls, counted in "status", no loop, no direct call
  ;; cycle. Expected: as recurse_fanout.
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
  (type $void_i32 (func (param i32)))
  (table 1 funcref)
  (elem (i32.const 0) $f)
  (func $f (type $void_i32)
    (global.set $status (i32.add (global.get $status) (i32.const 1)))
    (if (local.get 0)
      (then
        (call_indirect (type $void_i32) (i32.sub (local.get 0) (i32.const 1)) (i32.const 0))
        (call_indirect (type $void_i32) (i32.sub (local.get 0) (i32.const 1)) (i32.const 0)))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (global.set $status (i32.const 0))
    (call_indirect (type $void_i32) (i32.shl (local.get 1) (i32.const 3)) (i32.const 0))
    (i32.const 0))
)
