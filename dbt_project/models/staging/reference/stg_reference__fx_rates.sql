-- Daily FX rates into the reporting currency (a seed for the sandbox; a source in prod),
-- plus the identity rate for the reporting currency itself.
select
    cast(rate_date as date) as rate_date,
    from_currency,
    to_currency,
    cast(rate as {{ cfap.type_double() }}) as rate
from {{ ref('fx_rates') }}
where to_currency = '{{ var("reporting_currency") }}'
