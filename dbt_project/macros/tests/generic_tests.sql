{#- Custom generic tests (no dbt_utils here). -#}

{% test non_negative(model, column_name) %}
    select * from {{ model }} where {{ column_name }} < 0
{% endtest %}

{% test unique_combination(model, columns) %}
    select {{ columns | join(', ') }}, count(*) as n
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1
{% endtest %}

{#- Every row in a non-reporting currency found an FX rate. -#}
{% test fx_covered(model, column_name, currency_column) %}
    select * from {{ model }}
    where {{ currency_column }} != '{{ var("reporting_currency") }}' and {{ column_name }} is null
{% endtest %}

{#- A date column has no gaps between its first and last value. -#}
{% test no_date_gaps(model, column_name) %}
    with bounds as (
        select min({{ column_name }}) as lo, max({{ column_name }}) as hi,
               count(distinct {{ column_name }}) as n
        from {{ model }}
    )
    select * from bounds
    where n != {{ dbt.datediff('lo', 'hi', 'day') }} + 1
{% endtest %}
