//! What the examples share: child processes of this executable, started and awaited.
//!
//! What the examples share: running this same executable again as child
//! processes, starting them together, and waiting for them with a deadline.
//!
//! The parent owns the segments, so whatever happens to a child, the parent's
//! drops remove them: a child that fails or outlives the deadline is killed
//! and reaped, and the parent returns an error.

use std::error::Error;
use std::io::Read;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use common::wait::Deadline;

/// An example's result: any error, printed as one line.
pub type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

/// Runs an example's `run` with its arguments (without the program name),
/// printing an error as `NAME: error: ...` on stderr. The exit code is the
/// library's for its errors (2 for usage, 128 + N for signal N), else 1.
pub fn main(example: &str, run: fn(&[String]) -> Result) -> ExitCode {
    // SIGINT/SIGTERM become an error in the waits below, so the children are
    // killed and the segments removed before the parent exits.
    if let Err(e) = common::signals::install() {
        eprintln!("{example}: error: {e}");
        return ExitCode::FAILURE;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{example}: error: {e}");
            let code = e
                .downcast_ref::<common::Error>()
                .map_or(1, |e| e.exit_code());
            ExitCode::from(code.clamp(1, 255) as u8)
        }
    }
}

/// A usage error (exit code 2).
pub fn usage(message: impl Into<String>) -> Box<dyn Error> {
    Box::new(common::Error::Usage(message.into()))
}

/// Child processes of this executable; any still running when this is
/// dropped are killed and reaped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Runs this executable once per entry of `each` with those arguments, lets
/// them all start together, and waits until every one has exited
/// successfully, at most `timeout`.
///
/// The children's stdout is discarded (the parent alone prints results);
/// their stderr is this process's.
pub fn run_children(each: &[Vec<String>], timeout: Duration) -> Result {
    let exe = std::env::current_exe()?;
    let mut children = Children(Vec::with_capacity(each.len()));
    for args in each {
        let child = Command::new(&exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        children.0.push(child);
    }
    // Closing the pipes is the start signal (see `wait_for_start`).
    for child in &mut children.0 {
        drop(child.stdin.take());
    }
    let deadline = Deadline::after(timeout);
    let mut running = children.0.len();
    while running > 0 {
        running = 0;
        for child in &mut children.0 {
            match child.try_wait()? {
                Some(status) if status.success() => {}
                Some(status) => {
                    return Err(format!("child pid {} failed ({status})", child.id()).into())
                }
                None => running += 1,
            }
        }
        if running > 0 {
            common::signals::check()?;
            if deadline.remaining().is_none() {
                return Err(deadline
                    .timeout(format!("{running} child process(es) still running"))
                    .into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(())
}

/// In a child: blocks until the parent has started all children (it closes
/// our stdin then, or dies, which closes it too).
#[allow(dead_code)] // only the race example needs its children to start together
pub fn wait_for_start() -> Result {
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink)?;
    Ok(())
}
