//! Shrinking a failing case to one minimal request: the single mutation on
//! the example with the other optional fields left out, as far as the
//! request still fails the same way.
//!
//! All at once first (one request when, as usual, the optional fields play
//! no part), then one at a time, keeping each drop that still fails.

use std::future::Future;

use super::fields::FieldPath;

/// The optional fields to leave out, found by `fails_alike(dropped)`
/// (whether the request without `dropped` fails as the original did).
pub(super) async fn shrink<F, Fut>(optional: &[FieldPath], mut fails_alike: F) -> Vec<FieldPath>
where
    F: FnMut(Vec<FieldPath>) -> Fut,
    Fut: Future<Output = bool>,
{
    if optional.is_empty() {
        return Vec::new();
    }
    if fails_alike(optional.to_vec()).await {
        return optional.to_vec();
    }
    let mut dropped = Vec::new();
    for field in optional {
        let mut trial = dropped.clone();
        trial.push(field.clone());
        if fails_alike(trial.clone()).await {
            dropped = trial;
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::inputs::fields::Seg;
    use std::cell::Cell;

    fn path(key: &str) -> FieldPath {
        FieldPath(vec![Seg::Key(key.into())])
    }

    #[tokio::test]
    async fn all_optional_fields_go_when_the_failure_does_not_need_them() {
        let tries = Cell::new(0);
        let optional = [path("lastName"), path("company")];
        let dropped = shrink(&optional, |_| {
            tries.set(tries.get() + 1);
            async { true }
        })
        .await;
        assert_eq!(dropped, optional);
        assert_eq!(tries.get(), 1, "one request when all can go");
    }

    #[tokio::test]
    async fn a_field_the_failure_needs_is_kept() {
        let optional = [path("lastName"), path("company"), path("phone")];
        let dropped = shrink(&optional, |dropped: Vec<FieldPath>| {
            let needs_company = !dropped.contains(&path("company"));
            async move { needs_company }
        })
        .await;
        assert_eq!(dropped, [path("lastName"), path("phone")]);
        assert!(shrink(&[], |_| async { true }).await.is_empty());
    }
}
