//! Roles and statuses cross the store boundary as enums, not strings: a column holding a value the
//! code does not know is a decode error naming the value, never a silent mismatch in a comparison.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

use crate::model::{AccountStatus, AppStatus, Pending, Role, TenantState, TenantStatus};

macro_rules! text_enum {
    ($($name:ident => $what:literal),+ $(,)?) => {$(
        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<Postgres>>::decode(value)?;
                $name::parse(text).ok_or_else(|| format!(concat!("unknown ", $what, " `{}` in the database"), text).into())
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode(self.as_str(), buf)
            }
        }
    )+};
}

text_enum!(
    Role => "role",
    AccountStatus => "account status",
    TenantStatus => "tenant status",
    TenantState => "tenant state",
    AppStatus => "application status",
    Pending => "pending step",
);
