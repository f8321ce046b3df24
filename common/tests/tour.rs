//! The guided tour's lesson table: `scripts/tour.sh --list` and docs/TOUR.md agree on seven lessons.
//!
//! The tour itself runs in CI (`.ci/run` runs `scripts/tour.sh`); here only
//! what needs no build: the list of lessons, its usage errors, and the
//! read-only tour in docs/TOUR.md having a section for every lesson.

mod util;

use std::process::{Command, Output};

use util::root;

fn tour(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(root().join("scripts/tour.sh"))
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .expect("bash runs scripts/tour.sh")
}

/// The lessons as `--list` prints them: (number, the rest of the line).
fn listed() -> Vec<(u32, String)> {
    let out = tour(&["--list"]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(!text.contains('\u{1b}'), "colour in a pipe: {text:?}");
    text.lines()
        .map(|line| {
            let (number, rest) = line
                .split_once("  ")
                .unwrap_or_else(|| panic!("not a lesson line: {line:?}"));
            let number = number
                .parse()
                .unwrap_or_else(|_| panic!("no lesson number: {line:?}"));
            (number, rest.trim().to_owned())
        })
        .collect()
}

const TITLES: [&str; 7] = [
    "Two copies against one",
    "Exclusive access",
    "Lost updates",
    "A holder dies",
    "The hardened way",
    "Streams",
    "Where shared memory does not win",
];

#[test]
fn the_tour_lists_its_seven_lessons_in_order() {
    let lessons = listed();
    let numbers: Vec<u32> = lessons.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6, 7]);
    for ((_, line), title) in lessons.iter().zip(TITLES) {
        assert!(line.starts_with(title), "{line:?} is not lesson {title:?}");
    }
    // Every lesson is in the tour: none is marked as skipped.
    assert!(
        lessons
            .iter()
            .all(|(_, line)| !line.contains("not in the tour yet")),
        "{lessons:?}"
    );
}

#[test]
fn unknown_arguments_and_lessons_are_usage_errors() {
    for args in [&["--bogus"][..], &["8"], &["0"]] {
        let out = tour(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            out.stdout.is_empty(),
            "{args:?} built or ran something: {out:?}"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Usage:"),
            "{out:?}"
        );
    }
}

#[test]
fn docs_tour_has_a_section_for_every_lesson() {
    let doc = std::fs::read_to_string(root().join("docs/TOUR.md")).expect("docs/TOUR.md");
    for (i, title) in TITLES.iter().enumerate() {
        let heading = format!("## {}. {title}", i + 1);
        assert!(doc.contains(&heading), "docs/TOUR.md has no {heading:?}");
    }
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    assert!(readme.contains("scripts/tour.sh") && readme.contains("docs/TOUR.md"));
}
