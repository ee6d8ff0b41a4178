//! [`Pager`]: which page of results to return.

/// Page `page` (1-based) of `size` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pager {
    page: u64,
    size: u64,
}

impl Pager {
    /// Page `page` (1-based; 0 is read as 1) of `size` rows.
    pub fn new(page: u64, size: u64) -> Self {
        Pager {
            page: page.max(1),
            size,
        }
    }

    /// The 1-based page number.
    pub fn page(&self) -> u64 {
        self.page
    }

    /// Rows per page.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Rows skipped before this page.
    pub fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.size)
    }

    /// ` LIMIT offset, size` as literal numbers (every dialect takes this form but
    /// PostgreSQL, which gets its own rendering).
    pub(crate) fn limit_clause(&self) -> String {
        format!(" LIMIT {} OFFSET {}", self.size, self.offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_one_based() {
        assert_eq!(Pager::new(1, 10).offset(), 0);
        assert_eq!(Pager::new(3, 10).offset(), 20);
        assert_eq!(Pager::new(0, 10), Pager::new(1, 10));
        assert_eq!(Pager::new(2, 5).limit_clause(), " LIMIT 5 OFFSET 5");
    }
}
