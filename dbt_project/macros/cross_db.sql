{#- Cross-database helpers: DuckDB locally, BigQuery in production. No hub packages. -#}

{% macro date_spine(start_date, end_date) -%}
    {{ return(adapter.dispatch('date_spine', 'cfap')(start_date, end_date)) }}
{%- endmacro %}

{% macro default__date_spine(start_date, end_date) -%}
    select cast(d as date) as date_day
    from generate_series(cast({{ start_date }} as date), cast({{ end_date }} as date), interval 1 day) as t(d)
{%- endmacro %}

{% macro bigquery__date_spine(start_date, end_date) -%}
    select date_day
    from unnest(generate_date_array(cast({{ start_date }} as date), cast({{ end_date }} as date))) as date_day
{%- endmacro %}


{% macro safe_divide(numerator, denominator) -%}
    {{ return(adapter.dispatch('safe_divide', 'cfap')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__safe_divide(numerator, denominator) -%}
    case when ({{ denominator }}) = 0 then null else ({{ numerator }}) / ({{ denominator }}) end
{%- endmacro %}

{% macro bigquery__safe_divide(numerator, denominator) -%}
    safe_divide({{ numerator }}, {{ denominator }})
{%- endmacro %}


{#- A scalar from a JSON string column, as text. `path` is a JSONPath like '$.a.b'. -#}
{% macro json_text(column, path) -%}
    {{ return(adapter.dispatch('json_text', 'cfap')(column, path)) }}
{%- endmacro %}

{% macro default__json_text(column, path) -%}
    json_extract_string({{ column }}, '{{ path }}')
{%- endmacro %}

{% macro bigquery__json_text(column, path) -%}
    json_value({{ column }}, '{{ path }}')
{%- endmacro %}


{#- Cross join a JSON array column into one row per element (`alias` holds the element). -#}
{% macro json_array_elements(column, alias) -%}
    {{ return(adapter.dispatch('json_array_elements', 'cfap')(column, alias)) }}
{%- endmacro %}

{% macro default__json_array_elements(column, alias) -%}
    unnest(cast(json_extract(coalesce({{ column }}, '[]'), '$[*]') as json[])) as _elements({{ alias }})
{%- endmacro %}

{% macro bigquery__json_array_elements(column, alias) -%}
    unnest(json_query_array(coalesce({{ column }}, '[]'))) as {{ alias }}
{%- endmacro %}


{#- An ISO-8601 timestamp string with a UTC offset, as a UTC timestamp. -#}
{% macro parse_iso_timestamp(column) -%}
    {{ return(adapter.dispatch('parse_iso_timestamp', 'cfap')(column)) }}
{%- endmacro %}

{% macro default__parse_iso_timestamp(column) -%}
    cast(cast({{ column }} as timestamptz) at time zone 'UTC' as timestamp)
{%- endmacro %}

{% macro bigquery__parse_iso_timestamp(column) -%}
    cast(timestamp({{ column }}) as timestamp)
{%- endmacro %}


{#- The local calendar date of a UTC timestamp in an IANA time zone. -#}
{% macro local_date(utc_timestamp, time_zone) -%}
    {{ return(adapter.dispatch('local_date', 'cfap')(utc_timestamp, time_zone)) }}
{%- endmacro %}

{% macro default__local_date(utc_timestamp, time_zone) -%}
    cast(timezone({{ time_zone }}, cast({{ utc_timestamp }} as timestamp) at time zone 'UTC') as date)
{%- endmacro %}

{% macro bigquery__local_date(utc_timestamp, time_zone) -%}
    date({{ utc_timestamp }}, {{ time_zone }})
{%- endmacro %}


{% macro day_of_week_iso(date_column) -%}
    {{ return(adapter.dispatch('day_of_week_iso', 'cfap')(date_column)) }}
{%- endmacro %}

{% macro default__day_of_week_iso(date_column) -%}
    isodow({{ date_column }})
{%- endmacro %}

{% macro bigquery__day_of_week_iso(date_column) -%}
    mod(extract(dayofweek from {{ date_column }}) + 5, 7) + 1
{%- endmacro %}


{% macro iso_week_of_year(date_column) -%}
    {{ return(adapter.dispatch('iso_week_of_year', 'cfap')(date_column)) }}
{%- endmacro %}

{% macro default__iso_week_of_year(date_column) -%}
    cast(strftime({{ date_column }}, '%V') as integer)
{%- endmacro %}

{% macro bigquery__iso_week_of_year(date_column) -%}
    extract(isoweek from {{ date_column }})
{%- endmacro %}


{% macro day_name(date_column) -%}
    {{ return(adapter.dispatch('day_name', 'cfap')(date_column)) }}
{%- endmacro %}

{% macro default__day_name(date_column) -%}
    dayname({{ date_column }})
{%- endmacro %}

{% macro bigquery__day_name(date_column) -%}
    format_date('%A', {{ date_column }})
{%- endmacro %}


{% macro truncate_date(part, date_column) -%}
    {{ return(adapter.dispatch('truncate_date', 'cfap')(part, date_column)) }}
{%- endmacro %}

{% macro default__truncate_date(part, date_column) -%}
    cast(date_trunc('{{ part }}', {{ date_column }}) as date)
{%- endmacro %}

{% macro bigquery__truncate_date(part, date_column) -%}
    date_trunc({{ date_column }}, {{ 'isoweek' if part == 'week' else part }})
{%- endmacro %}


{#- Normalize a campaign name: trim, one " - " for any run of `_`/`|` separators, single spaces. -#}
{% macro normalize_name(column) -%}
    {{ return(adapter.dispatch('normalize_name', 'cfap')(column)) }}
{%- endmacro %}

{% macro default__normalize_name(column) -%}
    trim(regexp_replace(regexp_replace(trim({{ column }}), ' *[_|]+ *', ' - ', 'g'), ' +', ' ', 'g'))
{%- endmacro %}

{% macro bigquery__normalize_name(column) -%}
    trim(regexp_replace(regexp_replace(trim({{ column }}), r' *[_|]+ *', ' - '), r' +', ' '))
{%- endmacro %}


{#- A JSON sub-document (object or array) of a JSON string column, still as JSON. -#}
{% macro json_text_raw(column, path) -%}
    {{ return(adapter.dispatch('json_text_raw', 'cfap')(column, path)) }}
{%- endmacro %}

{% macro default__json_text_raw(column, path) -%}
    json_extract({{ column }}, '{{ path }}')
{%- endmacro %}

{% macro bigquery__json_text_raw(column, path) -%}
    json_query({{ column }}, '{{ path }}')
{%- endmacro %}


{#- Double precision: dbt's type_float() is a 4-byte REAL on DuckDB, too coarse for money. -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'cfap')()) }}
{%- endmacro %}

{% macro default__type_double() -%}double{%- endmacro %}

{% macro bigquery__type_double() -%}float64{%- endmacro %}
