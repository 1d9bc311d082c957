//! The scenario checker never panics: any text, and mutations of a valid
//! file, give a scenario or positioned errors.

use std::path::Path;

use proptest::prelude::*;
use tekup_harness::scenario::parse_str;

const VALID: &str = include_str!("scenario_fixtures/lead-to-contact.yaml");

fn check(text: &str) {
    match parse_str(Path::new("p.yaml"), text) {
        Ok(s) => assert!(!s.steps.is_empty(), "a valid scenario has steps"),
        Err(e) => {
            assert!(!e.0.is_empty());
            let lines = text.lines().count().max(1) + 1;
            for d in &e.0 {
                assert!(d.pos.line >= 1 && d.pos.col >= 1, "{d}");
                assert!(d.pos.line <= lines, "{d} beyond {lines} lines");
                assert!(d.to_string().starts_with("p.yaml:"), "{d}");
                assert!(!d.hint.is_empty(), "{d}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check(&text);
    }

    #[test]
    fn yaml_like_text_never_panics(text in "[a-z:{}\\[\\], \\n\\-\"$#&*!|>0-9.]{0,300}") {
        check(&text);
    }

    #[test]
    fn mutated_valid_files_never_panic(
        at in 0usize..VALID.len(),
        cut in 0usize..40,
        insert in "[a-z:{}\\[\\], \\n\\-\"${}#0-9]{0,12}",
    ) {
        let mut text: Vec<char> = VALID.chars().collect();
        let at = at.min(text.len());
        let end = (at + cut).min(text.len());
        text.splice(at..end, insert.chars());
        check(&text.into_iter().collect::<String>());
    }
}
