-- Daily FX rates into the reporting currency: the published seed locally, the treasury's
-- rates table (source reference.fx_rates) in production.
select
    cast(rate_date as date) as rate_date,
    from_currency,
    to_currency,
    cast(rate as {{ cfap.type_double() }}) as rate
from {% if target.name == 'prod' %}{{ source('reference', 'fx_rates') }}{% else %}{{ ref('fx_rates') }}{% endif %}
where to_currency = '{{ var("reporting_currency") }}'
