//! The coverage table of `mocks/README.md` stays honest: every test it cites
//! exists, every row has a known status, and nothing is "served" without a
//! test that proves it. Renaming or deleting a test, or adding a row without
//! one, fails here instead of leaving the table to drift.

use std::collections::BTreeSet;
use std::path::Path;

/// Rows of the coverage tables: (line number, cells).
fn coverage_rows(readme: &str) -> Vec<(usize, Vec<String>)> {
    let start = readme
        .find("\n# Coverage")
        .expect("mocks/README.md has a `# Coverage` section");
    let section = &readme[start + 1..];
    let end = section[1..].find("\n# ").map_or(section.len(), |i| i + 1);
    let first_line = readme[..start + 1].lines().count();
    section[..end]
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with('|') && !l.starts_with("|---"))
        .filter(|(_, l)| !l.starts_with("| endpoint or feature"))
        .map(|(i, l)| {
            let cells = l
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect();
            (first_line + i + 1, cells)
        })
        .collect()
}

/// Every `fn name` in the crate's tests and sources.
fn functions(root: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut dirs = vec![root.join("tests"), root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for rest in text.split("fn ").skip(1) {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    names.insert(name);
                }
            }
        }
    }
    names
}

/// The backticked names of a cell.
fn cited(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// What is wrong with the coverage tables of `readme`, one line each.
fn problems(readme: &str, functions: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    for (line, cells) in coverage_rows(readme) {
        let [feature, _sdk_call, tests, status] = cells.as_slice() else {
            problems.push(format!("README.md:{line}: {} cells, 4 wanted", cells.len()));
            continue;
        };
        for test in cited(tests) {
            if !functions.contains(test) {
                problems.push(format!(
                    "README.md:{line} ({feature}): cites the test `{test}`, which does not exist"
                ));
            }
        }
        let known = ["served", "partial", "refused"];
        if !known.iter().any(|k| status.starts_with(k)) {
            problems.push(format!(
                "README.md:{line} ({feature}): status {status:?} is not served / partial / refused"
            ));
        }
        if cited(tests).is_empty() && !status.starts_with("partial") {
            problems.push(format!(
                "README.md:{line} ({feature}): \"{status}\" without a test that proves it"
            ));
        }
    }
    problems
}

#[test]
fn the_coverage_table_cites_real_tests_and_known_statuses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let rows = coverage_rows(&readme).len();
    assert!(rows >= 40, "the coverage tables have {rows} rows");
    let problems = problems(&readme, &functions(root));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_drifted_table_is_reported_row_by_row() {
    let readme = "intro\n\n# Coverage\n\n\
        | endpoint or feature | SDK call | test | status |\n\
        |---|---|---|---|\n\
        | chat | `create` | `chat_sdk` | served |\n\
        | embeddings | `embed` | `renamed_away` | served |\n\
        | audio | — | — | served |\n\
        | files | — | — | maybe |\n\
        | batch | — | — | partial (not served) |\n\
        \n# Next\n| x | y | z | served |\n";
    let functions = BTreeSet::from(["chat_sdk".to_owned()]);
    assert_eq!(
        problems(readme, &functions),
        [
            "README.md:8 (embeddings): cites the test `renamed_away`, which does not exist",
            "README.md:9 (audio): \"served\" without a test that proves it",
            "README.md:10 (files): status \"maybe\" is not served / partial / refused",
            "README.md:10 (files): \"maybe\" without a test that proves it",
        ]
    );
}
