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
