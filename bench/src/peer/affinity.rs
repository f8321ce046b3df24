//! CPU affinity: the CPUs this process may use, pinning it to one, and restoring them.
//!
//! Which CPUs this process may use, pinning it to one, and restoring what
//! it had.

use common::error::{Error, Result};

/// The CPUs this process may run on, in increasing order.
pub fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect(),
        Err(_) => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

/// Pins the calling thread (and the threads it starts later) to `cpu`.
///
/// # Errors
/// [`Error::Usage`] when the CPU does not exist or is not allowed.
pub fn pin_to(cpu: usize) -> Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    if cpu >= rustix::thread::CpuSet::MAX_CPU {
        return Err(Error::Usage(format!("CPU {cpu} does not exist")));
    }
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)
        .map_err(|e| Error::Usage(format!("cannot pin to CPU {cpu}: {e}")))
}

/// Restores an affinity saved with [`affinity`].
///
/// # Errors
/// The system's error.
pub fn set_affinity(set: &rustix::thread::CpuSet) -> Result<()> {
    rustix::thread::sched_setaffinity(None, set).map_err(Error::from)
}

/// The calling thread's affinity, to restore after pinning.
///
/// # Errors
/// The system's error.
pub fn affinity() -> Result<rustix::thread::CpuSet> {
    rustix::thread::sched_getaffinity(None).map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_cpus_include_the_current_one() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        assert!(cpus.contains(&rustix::thread::sched_getcpu()));
        assert!(pin_to(rustix::thread::CpuSet::MAX_CPU).is_err());
    }
}
