//! The ASX's "today's announcements" page, `GET
//! /asx/v2/statistics/todayAnns.do`, rendered from the scenario at the
//! simulated "now" in the shape of the real page (reference part B1): the
//! classic v2 skeleton, an `announcement_data` element around one table,
//! rows newest first, a price-sensitive icon or a non-breaking space, and
//! every headline HTML-escaped. Before the day's first release the page
//! has its title and heading but no table, as the ASX serves it then.

use chrono::{DateTime, NaiveTime, Utc};

use crate::http::Reply;
use crate::scenario::{Announcement, Scenario};

/// The page's path on www.asx.com.au.
pub const PAGE_PATH: &str = "/asx/v2/statistics/todayAnns.do";

/// Everything above the list, up to the refresh form.
const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
	<title>Today's announcements - ASX</title>
	<meta name="viewport" content="width=device-width, initial-scale=1">
	<link rel="stylesheet" type="text/css" href="/asx/v2/css/classic.css">
	<script type="text/javascript">
		function submitForm(name) {
			document.forms[name].submit();
		}
	</script>
</head>
<body class="layout-two-column section-dynamic  page-3328 wide">
<section class="wrapper">
<article>
<div id="content" class="page">
	<div class="primary">
		<h1>Company announcements published on<br>
			<span>{DATE}</span></h1>
		<ul class="nav-secondary">
			<li class="selected"><a href="/asx/v2/statistics/todayAnns.do">Today's announcements</a></li>
			<li><a href="/asx/v2/statistics/prevBusDayAnns.do">Previous business day</a></li>
			<li><a href="/asx/v2/statistics/announcements.do">Search announcements</a></li>
		</ul>
		<p>Served by skim-sim: the shape of the ASX page with a scenario's
		invented announcements. Not for commercial use.</p>
		<form name="refreshAnnouncements" method="get" action="/asx/v2/statistics/todayAnns.do">
			<input type="button" value="Refresh" onclick="submitForm('refreshAnnouncements')">
		</form>
"#;

const TABLE_START: &str = r#"		<announcement_data>
		<table>
			<caption>Today's Announcements</caption>
			<thead>
			<tr>
				<th>ASX Code</th>
				<th>Date</th>
				<th>Price sens.</th>
				<th>
					<span>Headline</span>
				</th>
			</tr>
			</thead>
			<tbody>
"#;

const TABLE_END: &str = "\t\t\t</tbody>\n\t\t</table>\n\t\t</announcement_data>\n";

const FOOT: &str = "\t</div>\n</div>\n</article>\n</section>\n</body>\n</html>\n";

/// A redesigned page that loads its list by script: what a layout change
/// looks like to a scraper.
const CHANGED_LAYOUT: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
	<title>Market announcements | Australian Securities Exchange</title>
	<meta name="viewport" content="width=device-width, initial-scale=1">
</head>
<body>
<main id="app">
	<h1>Market announcements</h1>
	<div class="announcement-list" data-endpoint="/api/announcements"></div>
	<noscript>Enable JavaScript to see today's announcements.</noscript>
</main>
</body>
</html>
"#;

const SENSITIVE_ICON: &str = concat!(
    r#"<img src="/asx/v2/markets/image/icon-price-sensitive.svg" class="pricesens""#,
    r#" alt="asterix" title="price sensitive" height="12.5" width="6">"#
);

const PDF_LINK: &str = concat!(
    r#"<a style="text-decoration: none;" target="_blank""#,
    r#" href="/asx/v2/statistics/displayAnnouncement.do?display=pdf&amp;idsId="#
);

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(ch),
        }
    }
    out
}

/// `7:24 pm`: 12-hour, no leading zero, lower-case, as the page shows it.
fn clock_text(time: NaiveTime) -> String {
    time.format("%-I:%M %P").to_string()
}

fn row(out: &mut String, date: &str, ann: &Announcement) {
    let sensitive = if ann.price_sensitive {
        format!("<td>\n\t\t\t\t\t{SENSITIVE_ICON}\n\t\t\t\t</td>")
    } else {
        "<td>&nbsp;</td>".to_string()
    };
    let unit = if ann.pages == 1 { "page" } else { "pages" };
    out.push_str(&format!(
        "\t\t\t<tr>
\t\t\t\t<td>{code}</td>
\t\t\t\t<td>
\t\t\t\t\t{date}<br>
\t\t\t\t\t<span class=\"dates-time\">{time}</span>
\t\t\t\t</td>
\t\t\t\t{sensitive}
\t\t\t\t<td>
\t\t\t\t\t{PDF_LINK}{id}\">
\t\t\t\t\t\t{headline}
\t\t\t\t\t\t<br>
\t\t\t\t\t\t<!-- <span style=\"color: red;\">PDF</span> -->
\t\t\t\t\t\t<img src=\"/asx/v2/markets/image/pdf_icon.png\" height=\"16\" width=\"16\">
\t\t\t\t\t\t<span class=\"page\">
\t\t\t\t\t\t\t{pages}
\t\t\t\t\t\t\t{unit}
\t\t\t\t\t\t</span>
\t\t\t\t\t\t<span class=\"filesize\">
\t\t\t\t\t\t\t{size}
\t\t\t\t\t\t</span>
\t\t\t\t\t</a>
\t\t\t\t</td>
\t\t\t</tr>
",
        code = escape(&ann.code),
        time = clock_text(ann.time),
        id = escape(&ann.ids_id),
        headline = escape(&ann.headline),
        pages = ann.pages,
        size = escape(&ann.file_size),
    ));
}

/// The page as the ASX would serve it at `now`: the released
/// announcements newest first, or the empty-morning form before any.
pub fn render(scenario: &Scenario, now: DateTime<Utc>) -> String {
    let released = scenario.released(now);
    let heading = scenario.date.format("%-d %B %Y").to_string();
    let mut out = HEAD.replace("{DATE}", &heading);
    if !released.is_empty() {
        let date = scenario.date.format("%d/%m/%Y").to_string();
        out.push_str(TABLE_START);
        for ann in released {
            row(&mut out, &date, ann);
        }
        out.push_str(TABLE_END);
    }
    out.push_str(FOOT);
    out
}

/// Faults of the announcements page, switched on while it runs.
#[derive(Clone, Debug, Default)]
pub struct AsxFaults {
    /// Answer the next N page requests with 500.
    pub server_error_next: u32,
    /// Serve a redesigned page without the table, until switched off.
    pub changed_layout: bool,
}

/// Serves the page, applying the faults.
pub(crate) fn serve(scenario: &Scenario, now: DateTime<Utc>, faults: &mut AsxFaults) -> Reply {
    if faults.server_error_next > 0 {
        faults.server_error_next -= 1;
        return Reply::html(
            500,
            "<html><body><h1>500 Internal Server Error</h1></body></html>\n",
        );
    }
    if faults.changed_layout {
        return Reply::html(200, CHANGED_LAYOUT);
    }
    Reply::html(200, &render(scenario, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_like_the_page() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert_eq!(clock_text(t(19, 24)), "7:24 pm");
        assert_eq!(clock_text(t(8, 5)), "8:05 am");
        assert_eq!(clock_text(t(12, 0)), "12:00 pm");
    }

    #[test]
    fn headlines_are_escaped() {
        assert_eq!(
            escape(r#"Appendix 3Y <Director> & "Interest""#),
            "Appendix 3Y &lt;Director&gt; &amp; &quot;Interest&quot;"
        );
    }
}
