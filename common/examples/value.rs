//! Python's `multiprocessing.Value` example in Rust, with a real child process.
//!
//! Python's `multiprocessing.Value` example, with a real child process:
//!
//! ```python
//! from multiprocessing import Process, Value
//!
//! def add(num):
//!     with num.get_lock():
//!         num.value += 10
//!
//! num = Value('i', 0)
//! p = Process(target=add, args=(num,))
//! p.start()
//! p.join()
//! print("Value is ", num.value)
//! ```
//!
//! `cargo run -p common --example value` prints `Value is  10`. The parent
//! creates the shared `i32`, runs this program again as the child (which opens
//! the value by name and adds 10 under the lock), waits for it, and prints.

mod support;

use std::process::ExitCode;
use std::time::Duration;

use common::shared::SharedValue;
use common::Name;

/// How long the parent waits for the child.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    support::main("value", run)
}

fn run(args: &[String]) -> support::Result {
    match args {
        [] => parent(),
        [flag, name] if flag == "--child" => child(name),
        _ => Err(support::usage("usage: value (no arguments)")),
    }
}

fn parent() -> support::Result {
    // The pid makes the name unique, so two runs can overlap.
    let name = Name::new(&format!("example-value-{}", std::process::id()))?;
    let num = SharedValue::create(&name, 0i32)?;
    support::run_children(&[vec!["--child".into(), name.to_string()]], CHILD_TIMEOUT)?;
    // Python's print() puts a space between its arguments: "Value is " + " " + "10".
    println!("Value is  {}", num.get()?);
    Ok(())
    // `num` is dropped here: the creator removes /dev/shm/p1p2.example-value-PID.
}

fn child(name: &str) -> support::Result {
    let num = SharedValue::<i32>::open(&Name::new(name)?)?;
    *num.lock()? += 10;
    Ok(())
}
