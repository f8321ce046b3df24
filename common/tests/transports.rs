//! Tests of the same transfer over shm, unix and tcp, with the real binaries.
//!
//! The same transfer over shm, unix and tcp with the real binaries: the copy
//! ledger and the kernel's counters back the classic claim (two copies over a
//! socket, one over shared memory), the decoded image is identical over every
//! transport, and bad inputs and misbehaving peers give one clear error.

mod util;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use common::Name;
use serde_json::Value;
use util::{assert_clean, copies, free_addr, image, run, unique, wait_for, Proc, Run};

const LIMIT: Duration = Duration::from_secs(60);

/// Runs the consumer first, then the producer, over `transport`.
fn transfer(
    transport: &str,
    name: &str,
    producer_extra: &[&str],
    consumer_extra: &[&str],
) -> (Run, Run) {
    let addr = free_addr();
    let both = [
        "--name",
        name,
        "--transport",
        transport,
        "--addr",
        &addr,
        "--json",
    ];
    let consumer = Proc::start("consumer", &[&both[..], consumer_extra].concat());
    std::thread::sleep(Duration::from_millis(150));
    let producer = Proc::start("producer", &[&both[..], producer_extra].concat());
    let p = producer.wait(LIMIT);
    let c = consumer.wait(LIMIT);
    (p, c)
}

fn io(report: &Value, key: &str) -> u64 {
    report["proc_io"][key].as_u64().expect(key)
}

fn has_proc_io() -> bool {
    std::path::Path::new("/proc/self/io").exists()
}

#[test]
fn over_sockets_the_kernel_sees_every_byte_twice() {
    for transport in ["unix", "tcp"] {
        let name = unique(transport);
        let (p, c) = transfer(transport, &name, &[], &[]);
        let (p, c) = (p.ok().json(), c.ok().json());
        let bytes = c["bytes"].as_u64().unwrap();
        assert_eq!(
            copies(&p),
            [("heap -> socket (write)".into(), "kernel".into())]
        );
        assert_eq!(
            copies(&c),
            [("socket -> heap (read)".into(), "kernel".into())]
        );
        assert_eq!(p["read_mode"], "heap");
        assert_eq!(p["read_file"]["copies"][0]["what"], "file -> heap (pread)");
        if has_proc_io() {
            assert!(io(&p, "wchar") >= bytes, "{transport}: producer wchar {p}");
            assert!(io(&c, "rchar") >= bytes, "{transport}: consumer rchar {c}");
            assert!(io(&p, "syscw") >= 1 && io(&c, "syscr") >= 1);
            // The file read is a phase of its own.
            assert!(p["read_file"]["proc_io"]["rchar"].as_u64().unwrap() >= bytes);
        }
        for report in [&p, &c] {
            for key in ["minflt", "nvcsw", "nivcsw"] {
                assert!(report[key].is_u64(), "{key} missing from {report}");
            }
        }
        assert_clean(&name);
    }
}

#[test]
fn over_shared_memory_no_byte_passes_through_read_or_write() {
    let name = unique("shmio");
    let (p, c) = transfer("shm", &name, &[], &[]);
    let (p, c) = (p.ok().json(), c.ok().json());
    let bytes = c["bytes"].as_u64().unwrap();
    assert_eq!(
        copies(&p),
        [("file -> segment (pread)".into(), "kernel".into())]
    );
    assert!(copies(&c).is_empty(), "the consumer copied: {c}");
    assert_eq!(p["read_mode"], "direct");
    assert!(p["read_file"].is_null());
    if has_proc_io() {
        assert!(io(&p, "wchar") < bytes / 100, "producer wchar {p}");
        assert!(io(&c, "rchar") < bytes / 100, "consumer rchar {c}");
        assert!(io(&c, "wchar") < bytes / 100, "consumer wchar {c}");
    }
    assert_clean(&name);

    // Reading the file into the heap first: one memcpy, invisible to the kernel.
    let name = unique("shmheap");
    let (p, _) = transfer("shm", &name, &["--read", "heap"], &[]);
    let p = p.ok().json();
    assert_eq!(
        copies(&p),
        [("heap -> segment (memcpy)".into(), "user".into())]
    );
    assert_eq!(p["read_file"]["copies"][0]["by"], "kernel");
    if has_proc_io() {
        assert!(
            io(&p, "rchar") < bytes / 100 && io(&p, "wchar") < bytes / 100,
            "{p}"
        );
    }
    assert_clean(&name);
}

#[test]
fn a_non_temporal_copy_into_shared_memory_delivers_the_image_intact() {
    let dir = util::temp_dir("ntcopy");
    let direct = image::open(image()).unwrap();
    let crc = format!("{:08x}", crc32fast::hash(&std::fs::read(image()).unwrap()));
    // The image (773 KiB) is below the threshold: auto makes the standard copy.
    let nt = if cfg!(target_arch = "x86_64") {
        "heap -> segment (memcpy, non-temporal)"
    } else {
        "heap -> segment (memcpy)"
    };
    for (copy, what) in [
        ("nt", nt),
        ("std", "heap -> segment (memcpy)"),
        ("auto", "heap -> segment (memcpy)"),
    ] {
        let name = unique("ntcopy");
        let out = dir.path().join(format!("{copy}.png"));
        let (p, c) = transfer(
            "shm",
            &name,
            &["--read", "heap", "--copy", copy],
            &["--out", out.to_str().unwrap()],
        );
        let (p, c) = (p.ok().json(), c.ok().json());
        assert_eq!(p["copy_mode"], copy);
        assert_eq!(copies(&p), [(what.into(), "user".into())], "--copy {copy}");
        assert_eq!(p["crc32"], crc.as_str());
        assert_eq!(c["crc32"], crc.as_str());
        let got = image::open(&out).unwrap();
        assert_eq!(
            got.as_bytes(),
            direct.as_bytes(),
            "--copy {copy}: pixels differ"
        );
        assert_clean(&name);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_decoded_image_is_identical_over_every_transport() {
    let dir = util::temp_dir("same");
    let direct = image::open(image()).unwrap();
    let crc = format!("{:08x}", crc32fast::hash(&std::fs::read(image()).unwrap()));
    for transport in ["shm", "unix", "tcp"] {
        let name = unique("same");
        let out = dir.path().join(format!("{transport}.png"));
        let (p, c) = transfer(transport, &name, &[], &["--out", out.to_str().unwrap()]);
        p.ok();
        let c = c.ok().json();
        assert_eq!(c["transport"], transport);
        assert_eq!(c["crc32"], crc.as_str());
        assert_eq!(
            (c["width"].as_u64(), c["height"].as_u64()),
            (Some(512), Some(512))
        );
        let got = image::open(&out).unwrap();
        assert_eq!(
            got.as_bytes(),
            direct.as_bytes(),
            "{transport} pixels differ"
        );
        assert_clean(&name);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_inputs_fail_the_same_way_over_every_transport() {
    let dir = util::temp_dir("badin");
    let text = dir.path().join("notes.png");
    std::fs::write(&text, b"plain text").unwrap();
    let mut corrupt = std::fs::read(image()).unwrap();
    let mid = corrupt.len() / 2;
    corrupt[mid..mid + 64].iter_mut().for_each(|b| *b ^= 0xa5);
    let corrupt_path = dir.path().join("corrupt.png");
    std::fs::write(&corrupt_path, &corrupt).unwrap();
    for transport in ["shm", "unix", "tcp"] {
        let addr = free_addr();
        // Not a PNG: refused before anything is created.
        let name = unique("badin");
        run(
            "producer",
            &[
                text.to_str().unwrap(),
                "--name",
                &name,
                "--transport",
                transport,
                "--addr",
                &addr,
            ],
        )
        .fails_with(1, &["not a PNG file"]);
        // Nobody comes.
        let alone = |bin| {
            let args = ["--name", &name, "--transport", transport, "--addr", &addr];
            run(bin, &[&args[..], &["--timeout", "0.5"]].concat())
        };
        // The time it reports is the time it really waited: 0.5 s, or a
        // little more on a loaded machine.
        for (bin, what) in [("consumer", "no producer"), ("producer", "no consumer")] {
            let run = alone(bin);
            run.fails_with(1, &[what, "gave up after", "raise --timeout"]);
            let waited: f64 = run
                .stderr
                .split("gave up after ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|secs| secs.parse().ok())
                .unwrap_or_else(|| panic!("no time in {:?}", run.stderr));
            assert!((0.5..5.0).contains(&waited), "{}", run.stderr);
        }
        // A corrupt PNG: the consumer cannot decode it and says no.
        let (p, c) = transfer(transport, &name, &[corrupt_path.to_str().unwrap()], &[]);
        c.fails_with(1, &["cannot decode the image:"]);
        p.fails_with(1, &["the consumer rejected the payload"]);
        assert_clean(&name);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Acts as a producer that announces the whole image but sends half of it.
fn half_producer(mut conn: impl Read + Write) {
    let png = std::fs::read(image()).unwrap();
    let mut hello = [0u8; 16];
    conn.read_exact(&mut hello).unwrap();
    assert_eq!(&hello[..8], b"P1P2HEL\0");
    let mut header = [0u8; 24];
    header[..8].copy_from_slice(b"P1P2MSG\0");
    header[8..16].copy_from_slice(&(png.len() as u64).to_le_bytes());
    header[16..20].copy_from_slice(&crc32fast::hash(&png).to_le_bytes());
    conn.write_all(&header).unwrap();
    conn.write_all(&png[..png.len() / 2]).unwrap();
}

#[test]
fn a_producer_that_hangs_up_half_way_is_a_clear_error() {
    let half = "395,777 of 791,555 bytes";
    // Unix socket.
    let name = unique("halfu");
    let path = Name::new(&name).unwrap().socket_path();
    let listener = UnixListener::bind(&path).unwrap();
    let consumer = Proc::start("consumer", &["--name", &name, "--transport", "unix"]);
    let (conn, _) = listener.accept().unwrap();
    half_producer(conn);
    consumer
        .wait(LIMIT)
        .fails_with(1, &["the producer closed the connection after", half]);
    drop(listener);
    std::fs::remove_file(&path).unwrap();
    // TCP.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let consumer = Proc::start("consumer", &["--transport", "tcp", "--addr", &addr]);
    let (conn, _) = listener.accept().unwrap();
    half_producer(conn);
    consumer
        .wait(LIMIT)
        .fails_with(1, &["the producer closed the connection after", half]);
}

#[test]
fn a_consumer_that_hangs_up_half_way_is_a_clear_error() {
    let name = unique("halfc");
    let addr = free_addr();
    let producer = Proc::start(
        "producer",
        &[
            "--name",
            &name,
            "--transport",
            "tcp",
            "--addr",
            &addr,
            "--timeout",
            "20",
        ],
    );
    let mut conn = util::retry(|| TcpStream::connect(&addr).ok());
    let mut hello = [0u8; 16];
    hello[..8].copy_from_slice(b"P1P2HEL\0");
    conn.write_all(&hello).unwrap();
    let mut some = [0u8; 4096];
    conn.read_exact(&mut some).unwrap();
    drop(conn);
    producer.wait(LIMIT).fails_with(
        1,
        &["producer: error: ", "consumer", "closed the connection"],
    );
    assert_clean(&name);
}

#[test]
fn a_second_producer_on_one_socket_name_is_refused() {
    let name = unique("twice");
    let addr = free_addr();
    let first = Proc::start(
        "producer",
        &["--name", &name, "--transport", "unix", "--timeout", "30"],
    );
    let path = Name::new(&name).unwrap().socket_path();
    assert!(wait_for(&path, LIMIT));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket file mode");
    run("producer", &["--name", &name, "--transport", "unix"]).fails_with(
        1,
        &[&format!("socket {name} is in use by pid {}", first.pid)],
    );
    // The first producer's probe-and-refuse left it intact: a consumer still gets the image.
    run("consumer", &["--name", &name, "--transport", "unix"]).ok();
    let p = first.wait(LIMIT);
    p.ok();
    assert!(
        p.stdout
            .contains("ignored a connection that did not say hello"),
        "{}",
        p.stdout
    );
    assert_clean(&name);

    // TCP: the address is the name.
    let first = Proc::start(
        "producer",
        &["--transport", "tcp", "--addr", &addr, "--timeout", "30"],
    );
    util::retry(|| TcpStream::connect(&addr).ok());
    run("producer", &["--transport", "tcp", "--addr", &addr])
        .fails_with(1, &[&format!("address {addr} is in use")]);
    run("consumer", &["--transport", "tcp", "--addr", &addr]).ok();
    first.wait(LIMIT).ok();
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let name = unique("stalesock");
    let path = Name::new(&name).unwrap().socket_path();
    // A listener that went away without removing its file.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let (p, c) = transfer("unix", &name, &[], &[]);
    p.ok();
    c.ok();
    assert_clean(&name);
}

#[test]
fn something_else_on_the_tcp_port_is_a_bad_message() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let consumer = Proc::start("consumer", &["--transport", "tcp", "--addr", &addr]);
    let (mut conn, _) = listener.accept().unwrap();
    conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
    consumer
        .wait(LIMIT)
        .fails_with(1, &["bad message from the producer: wrong magic"]);
}

// ------------------------------------------------ Unix socket permissions

#[test]
fn the_socket_file_is_0600_from_the_moment_it_exists() {
    use std::os::unix::process::CommandExt;
    let name = unique("sockmode");
    let mut cmd = std::process::Command::new(util::bin("producer"));
    cmd.args(["--name", &name, "--transport", "unix", "--timeout", "30"])
        .env(common::failpoint::ENV, "producer:bound");
    // SAFETY: umask(2) is async-signal-safe and touches no memory; the child
    // calls it between fork and exec. With an empty umask, `bind` alone would
    // make the socket file 0777.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let producer = Proc::start_cmd(&mut cmd);
    // Stopped right after `bind`: the file exists under its temporary name
    // and nothing has touched it since.
    util::retry(|| util::stopped(producer.pid).then_some(()));
    let dir = common::name::socket_dir();
    let temp = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            file.starts_with(&format!("p1p2-tmp.{}.", producer.pid))
                && file.ends_with(&format!(".{name}.sock"))
        })
        .unwrap_or_else(|| panic!("no temporary socket of {name} in {}", dir.display()));
    let mode = std::fs::symlink_metadata(&temp)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{} right after bind", temp.display());

    producer.signal(libc::SIGCONT);
    let path = Name::new(&name).unwrap().socket_path();
    assert!(wait_for(&path, LIMIT));
    let mode = std::fs::symlink_metadata(&path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{} once published", path.display());
    run("consumer", &["--name", &name, "--transport", "unix"]).ok();
    producer.wait(LIMIT).ok();
    assert_clean(&name);
}

#[test]
fn a_peer_of_another_user_is_refused_on_both_sides() {
    use std::os::unix::process::CommandExt;
    if !rustix::process::geteuid().is_root() {
        println!("skipped: only root can run a consumer as another user (uid 65534)");
        return;
    }
    let name = unique("peeruid");
    // A socket directory that uid 65534 can reach.
    let dir = util::temp_dir("peeruid");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let in_dir = |cmd: &mut std::process::Command| {
        cmd.env("XDG_RUNTIME_DIR", dir.path())
            .args(["--name", &name, "--transport", "unix"]);
    };
    let mut cmd = std::process::Command::new(util::bin("producer"));
    in_dir(&mut cmd);
    let producer = Proc::start_cmd(cmd.args(["--timeout", "30"]));
    let path = dir.path().join(format!("p1p2.{name}.sock"));
    assert!(wait_for(&path, LIMIT));

    // Let uid 65534 connect (mode 0666), and get it past its own check that
    // the socket file is its user's (owner 65534): only the credentials of
    // the processes themselves are left to tell the two users apart.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let mut cmd = std::process::Command::new(util::bin("consumer"));
    in_dir(&mut cmd);
    cmd.args(["--timeout", "5"]).uid(65534).gid(65534);
    Proc::start_cmd(&mut cmd).wait(LIMIT).fails_with(
        1,
        &[
            "refusing",
            "the process listening on it, pid",
            "runs as uid 0, not as this user (65534)",
        ],
    );

    // The producer refused that connection and kept waiting: a consumer of
    // its own user gets the image.
    std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = std::process::Command::new(util::bin("consumer"));
    in_dir(&mut cmd);
    Proc::start_cmd(&mut cmd).wait(LIMIT).ok();
    let p = producer.wait(LIMIT);
    p.ok();
    assert!(
        p.stdout
            .contains("refused a connection from another user: pid ")
            && p.stdout.contains("runs as uid 65534, not as this user (0)"),
        "{}",
        p.stdout
    );
    assert!(!path.exists(), "the socket file was left behind");
    std::fs::remove_dir(&dir).unwrap();
    assert_clean(&name);
}
