//! Cash and bank transfers that a staff member confirms: no provider, no network.

use crate::PaymentConnector;
use crate::error::ConnectorError;
use crate::types::{ChargeOutcome, ChargeRequest, ConnectorName, NextAction, RefundOutcome, RefundRequest};

/// The manual connector. A charge waits for staff (`staff_confirmation`), whose confirmation
/// reaches billing as a command, not through this crate; a refund is money handed back by
/// staff and succeeds at once as `manual_<refund_id>`; there is nothing to fetch.
#[derive(Clone, Copy, Debug, Default)]
pub struct ManualConnector;

impl ManualConnector {
    /// The provider payment id of a manual payment: `manual_<payment_id>`.
    pub fn provider_payment_id(payment_id: &str) -> String {
        format!("manual_{payment_id}")
    }
}

#[async_trait::async_trait]
impl PaymentConnector for ManualConnector {
    fn name(&self) -> ConnectorName {
        ConnectorName::Manual
    }

    async fn charge(&self, r: &ChargeRequest) -> Result<ChargeOutcome, ConnectorError> {
        Ok(ChargeOutcome::RequiresAction {
            provider_payment_id: Self::provider_payment_id(&r.payment_id),
            action: NextAction::new(NextAction::STAFF_CONFIRMATION, None),
        })
    }

    async fn refund(&self, r: &RefundRequest) -> Result<RefundOutcome, ConnectorError> {
        Ok(RefundOutcome::Succeeded { provider_refund_id: format!("manual_{}", r.refund_id) })
    }

    async fn fetch(
        &self,
        _r: &ChargeRequest,
        _provider_payment_id: Option<&str>,
    ) -> Result<Option<ChargeOutcome>, ConnectorError> {
        Ok(None)
    }
}
