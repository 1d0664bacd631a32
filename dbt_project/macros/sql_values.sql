{#- Literals built from project vars (never from user input), quoted for SQL. -#}
{% macro sql_string(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}

{% macro is_activity_event(column) -%}
    {%- set excluded = var('non_activity_events') -%}
    {%- if excluded | length == 0 -%}
        true
    {%- else -%}
        {{ column }} not in ({% for name in excluded %}{{ sql_string(name) }}{% if not loop.last %}, {% endif %}{% endfor %})
    {%- endif -%}
{%- endmacro %}

{#- The first date an incremental daily fact recomputes: the last var('incremental_lookback_days')
    dates, or from var('backfill_from') (YYYY-MM-DD) when a backfill asks for an earlier start. -#}
{% macro incremental_start_date(fallback) -%}
    {%- set since = var('backfill_from', none) -%}
    {%- set recent -%}
        coalesce((select max(date_day) from {{ this }}) - {{ var('incremental_lookback_days') | int }}, {{ fallback }})
    {%- endset -%}
    {%- if since -%}
        least({{ recent }}, cast({{ sql_string(since) }} as date))
    {%- else -%}
        {{ recent }}
    {%- endif -%}
{%- endmacro %}
