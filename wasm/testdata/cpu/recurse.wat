(module
  ;; recurse: a well-behaved but call-heavy guest for the benchmarks.
  ;; proxy_on_request_headers computes fan(num_headers), where fan(n) calls
  ;; fan(n-1) twice (2^(n+1) - 1 calls, no loop), then returns CONTINUE.
  ;; Every fan entry is one stop-check countdown step (wasm/stopcheck.go).
  ;; Regenerate: wat2wasm recurse.wat -o recurse.wasm (Debian: wabt).
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (global $result (export "result") (mut i32) (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
  ;; Bump allocator over 4096..65535; 0 when the request does not fit.
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
  (func $fan (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 1))
      (else (i32.add (call $fan (i32.sub (local.get $n) (i32.const 1)))
                     (call $fan (i32.sub (local.get $n) (i32.const 1)))))))
  (func (export "proxy_on_request_headers") (param $id i32) (param $n i32) (param $eos i32) (result i32)
    (global.set $result (call $fan (local.get $n)))
    (i32.const 0))
)
