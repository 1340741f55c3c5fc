//! Management reporting: the monthly PDF report (`monthly_pdf` renders it, `monthly` gathers
//! its figures from the database), the vehicles that were due and never reminded, and the
//! retention of the message history (`retention`).

pub mod monthly;
pub mod monthly_pdf;
pub mod never_reminded;
pub mod retention;
