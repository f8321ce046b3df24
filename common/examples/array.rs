//! Python's `multiprocessing.Array` example in Rust, with a real child process.
//!
//! Python's `multiprocessing.Array` example, with a real child process:
//!
//! ```python
//! from multiprocessing import Process, Array
//!
//! def add_one(arr):
//!     with arr.get_lock():
//!         for i in range(len(arr)):
//!             arr[i] += 1
//!
//! arr = Array('i', [2, 3, 5, 7])
//! p = Process(target=add_one, args=(arr,))
//! p.start()
//! p.join()
//! for x in arr:
//!     print(x)
//! ```
//!
//! `cargo run -p common --example array` prints 3, 4, 6 and 8, one per line.
//! The child opens the array by name, checking that it holds four `i32`s, and
//! adds 1 to each element while holding the lock once for the whole loop.

mod support;

use std::process::ExitCode;
use std::time::Duration;

use common::shared::SharedArray;
use common::Name;

/// How long the parent waits for the child.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// What the parent shares.
const PRIMES: [i32; 4] = [2, 3, 5, 7];

fn main() -> ExitCode {
    support::main("array", run)
}

fn run(args: &[String]) -> support::Result {
    match args {
        [] => parent(),
        [flag, name] if flag == "--child" => child(name),
        _ => Err(support::usage("usage: array (no arguments)")),
    }
}

fn parent() -> support::Result {
    let name = Name::new(&format!("example-array-{}", std::process::id()))?;
    let arr = SharedArray::create(&name, &PRIMES)?;
    support::run_children(&[vec!["--child".into(), name.to_string()]], CHILD_TIMEOUT)?;
    for x in arr.to_vec()? {
        println!("{x}");
    }
    Ok(())
}

fn child(name: &str) -> support::Result {
    let arr = SharedArray::<i32>::open_with_len(&Name::new(name)?, PRIMES.len())?;
    for x in arr.lock()?.iter_mut() {
        *x += 1;
    }
    Ok(())
}
