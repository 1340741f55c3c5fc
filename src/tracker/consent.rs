//! The tracker's consent side: the consent changes carried by `consent.changed`, by stop and
//! start keywords in `reply.received`, and by `message.failed` with error `131050` (the user
//! stopped business messages), recorded in `at` order in the `consent` table.

use crate::domain::consent::{ConsentChanged, ConsentSource, Keywords, REPLY_RECEIVED};
use crate::domain::{
    CountryCode, EventError, IncomingEvent, MessageOutcome, OutcomeStatus, PhoneNumber,
};

/// The Cloud API error of a send to a user who stopped business messages.
pub const USER_STOPPED_CODE: &str = "131050";

/// The consent change a `consent.changed` or `reply.received` event makes, if any.
pub fn change_of(
    event: &IncomingEvent,
    keywords: &Keywords,
    country: &CountryCode,
) -> Result<Option<ConsentChanged>, EventError> {
    if event.ty == REPLY_RECEIVED {
        keywords.from_reply(event, country)
    } else {
        ConsentChanged::from_event(event, country).map(Some)
    }
}

/// The opt-out a failed send with `131050` means, when the failure names the phone.
pub fn change_of_outcome(outcome: &MessageOutcome) -> Option<ConsentChanged> {
    if outcome.status != OutcomeStatus::Failed
        || outcome.error_code.as_deref() != Some(USER_STOPPED_CODE)
    {
        return None;
    }
    let phone = PhoneNumber::from_normalised(outcome.phone.as_deref()?).ok()?;
    Some(ConsentChanged {
        phone,
        opted_out: true,
        source: ConsentSource::ProviderError,
        at: outcome.at,
    })
}
