(module
  ;; rewrite: exercises every place addStopChecks renumbers or changes
  ;; (stopcheck_test.go runs it before and after the rewrite and compares).
  ;; An imported function (index 0, which keeps its index), two tables,
  ;; element segments in six encodings (active on table 0 with indices
  ;; or expressions, active on an explicit table with indices and with
  ;; expressions, passive with expressions, declarative), a funcref global initialised with
  ;; ref.func, a start function, a loop with block parameters and nested
  ;; loops, and direct and indirect recursion (function-entry checks).
  ;; Regenerate: wat2wasm --debug-names rewrite.wat -o rewrite.wasm
  (type $i2i (func (param i32) (result i32)))
  (import "test" "add1" (func $add1 (type $i2i)))
  (table $t 6 funcref)
  (table $t2 3 funcref)
  (memory (export "memory") 1)
  (global $started (export "started") (mut i32) (i32.const 0))
  (global $fref funcref (ref.func $double))
  (elem (i32.const 0) $triple $triple)
  (elem (i32.const 4) funcref (ref.func $square) (ref.null func))
  (elem $p funcref (ref.func $square) (ref.null func))
  (elem declare func $neg)
  (elem (table $t2) (i32.const 0) func $add1 $triple)
  (elem (table $t2) (i32.const 1) funcref (ref.func $double) (ref.null func))
  (start $init)
  (func $init (global.set $started (i32.add (global.get $started) (i32.const 1))))
  (func $double (type $i2i) (i32.mul (local.get 0) (i32.const 2)))
  (func $triple (type $i2i) (i32.mul (local.get 0) (i32.const 3)))
  (func $square (type $i2i) (i32.mul (local.get 0) (local.get 0)))
  (func $neg (type $i2i) (i32.sub (i32.const 0) (local.get 0)))
  ;; sum returns 0 + 1 + ... + (n-1), accumulated as the loop's parameter.
  (func $sum (export "sum") (param $n i32) (result i32)
    (local $i i32)
    (i32.const 0)
    (loop $l (param i32) (result i32)
      (i32.add (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
  ;; nested counts the iterations of two nested loops of n each.
  (func $nested (export "nested") (param $n i32) (result i32)
    (local $i i32) (local $j i32) (local $c i32)
    (block $done
      (loop $outer
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $j (i32.const 0))
        (block $inner_done
          (loop $inner
            (br_if $inner_done (i32.ge_u (local.get $j) (local.get $n)))
            (local.set $c (i32.add (local.get $c) (i32.const 1)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $inner)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (local.get $c))
  ;; calls returns add1(double(x)) + t[0](x) + t[1](x) + t[2](x) + t[3](x)
  ;; + t[4](x) + t2[0](x) + t2[1](x), after setting t[0] from $fref
  ;; (double), t[2] from the passive segment (square) and t[3] with
  ;; ref.func (neg).
  (func $calls (export "calls") (param $x i32) (result i32)
    (table.set $t (i32.const 0) (global.get $fref))
    (table.init $t $p (i32.const 2) (i32.const 0) (i32.const 1))
    (table.set $t (i32.const 3) (ref.func $neg))
    (i32.add
      (i32.add
        (i32.add (call $add1 (call $double (local.get $x)))
                 (call_indirect $t (type $i2i) (local.get $x) (i32.const 0)))
        (i32.add (call_indirect $t (type $i2i) (local.get $x) (i32.const 1))
                 (call_indirect $t (type $i2i) (local.get $x) (i32.const 2))))
      (i32.add
        (i32.add (call_indirect $t (type $i2i) (local.get $x) (i32.const 3))
                 (call_indirect $t (type $i2i) (local.get $x) (i32.const 4)))
        (i32.add (call_indirect $t2 (type $i2i) (local.get $x) (i32.const 0))
                 (call_indirect $t2 (type $i2i) (local.get $x) (i32.const 1))))))
;; fan(n) returns 2^n through 2^(n+1) - 1 calls of itself, half of them
  ;; through call_indirect (t[5] is set to fan first): every call enters a
  ;; function that calls, so each is one countdown step.
  (func $fan (export "fan") (param $n i32) (result i32)
    (table.set $t (i32.const 5) (ref.func $fan))
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 1))
      (else
        (i32.add
          (call $fan (i32.sub (local.get $n) (i32.const 1)))
          (call_indirect $t (type $i2i) (i32.sub (local.get $n) (i32.const 1)) (i32.const 5))))))
)
