//! The time source. Production reads the system clock; tests pin or advance
//! it to exercise 60-day rules without sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use crate::domain::truncate_to_seconds;

#[derive(Clone)]
pub struct Clock(Option<Arc<Mutex<DateTime<Utc>>>>);

impl Clock {
    pub fn system() -> Self {
        Clock(None)
    }

    /// A clock that stands still at `t` until [`Clock::advance`] moves it.
    pub fn manual(t: DateTime<Utc>) -> Self {
        Clock(Some(Arc::new(Mutex::new(truncate_to_seconds(t)))))
    }

    /// Now, to the second (the precision of every stored timestamp).
    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            None => truncate_to_seconds(Utc::now()),
            Some(t) => *t.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Moves a manual clock forward; no effect on the system clock.
    pub fn advance(&self, by: Duration) {
        if let Some(t) = &self.0 {
            let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
            *t += by;
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}
