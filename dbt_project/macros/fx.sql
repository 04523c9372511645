{#- The rate into the reporting currency: 1 for the reporting currency itself, else the
    joined daily rate (null when missing, which the fx_covered test catches). -#}
{% macro fx_rate_expression(currency_column, rate_column) -%}
    case when {{ currency_column }} = '{{ var("reporting_currency") }}' then 1.0 else {{ rate_column }} end
{%- endmacro %}
