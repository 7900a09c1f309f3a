//! `Marker` / `MaxItems` paging as the durable list operations use it: the marker is
//! opaque to clients; here it is the index of the next item.

use super::DurableError;

/// The `MaxItems` Lambda uses when none is given (the model allows 0..=1000; 0 = default).
pub(crate) const DEFAULT_MAX_ITEMS: usize = 1000;

/// The page of `items` starting at `marker` with at most `max_items` (0 or `None`: the
/// default), and the marker of the next page if there is one.
pub(crate) fn page<'a, T>(
    items: &'a [T],
    marker: Option<&str>,
    max_items: Option<usize>,
) -> Result<(&'a [T], Option<String>), DurableError> {
    let start = match marker.filter(|m| !m.is_empty()) {
        None => 0,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|i| *i <= items.len())
            .ok_or_else(|| DurableError::invalid(format!("Invalid marker: {m}")))?,
    };
    let max = match max_items {
        None | Some(0) => DEFAULT_MAX_ITEMS,
        Some(n) => n.min(DEFAULT_MAX_ITEMS),
    };
    let end = (start + max).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok((&items[start..end], next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_markers_to_the_end() {
        let items: Vec<u32> = (0..5).collect();
        let (first, marker) = page(&items, None, Some(2)).unwrap();
        assert_eq!(first, &[0, 1]);
        let (second, marker) = page(&items, marker.as_deref(), Some(2)).unwrap();
        assert_eq!(second, &[2, 3]);
        let (last, marker) = page(&items, marker.as_deref(), Some(2)).unwrap();
        assert_eq!(last, &[4]);
        assert_eq!(marker, None);
        assert_eq!(page(&items, None, Some(0)).unwrap().0.len(), 5);
    }

    #[test]
    fn a_foreign_marker_is_an_invalid_parameter() {
        let items = [1, 2];
        assert!(matches!(
            page(&items, Some("x"), None),
            Err(DurableError::InvalidParameter(_))
        ));
        assert!(page(&items, Some("3"), None).is_err());
    }
}
