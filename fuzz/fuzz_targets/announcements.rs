//! The ASX announcements page parser on arbitrary text: it must answer
//! every page with rows or an error, never a panic, and every row it
//! returns must be complete.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skim_asx::asx;

const PAGE_URL: &str = "https://www.asx.com.au/asx/v2/statistics/todayAnns.do";

fuzz_target!(|html: &str| {
    let Ok(page) = asx::parse_page(html, PAGE_URL) else {
        return;
    };
    for row in &page.announcements {
        assert!(!row.code.is_empty(), "a row without a code: {row:?}");
        assert!(
            !row.headline.is_empty(),
            "a row without a headline: {row:?}"
        );
        // Links are made absolute against the page, so they stay on a URL.
        assert!(row.pdf_url.starts_with("http"), "a relative link: {row:?}");
    }
});
