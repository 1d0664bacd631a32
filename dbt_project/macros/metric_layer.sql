{#- The metric layer's measures (var `metric_layer`, dbt_project.yml), compiled to SQL aggregates
    over stg_silver__events columns. growth_loops.metrics compiles the same entries to polars for
    the loops; tests/integration/test_metric_layer.py checks both give the same numbers. -#}

{% macro metric_layer_condition(measure) -%}
    {%- set conditions = [] -%}
    {%- if measure.get('events') -%}
        {%- set names = [] -%}
        {%- for name in measure['events'] -%}{%- do names.append(sql_string(name)) -%}{%- endfor -%}
        {%- do conditions.append('event_name in (' ~ names | join(', ') ~ ')') -%}
    {%- endif -%}
    {%- if measure.get('activity') -%}
        {%- do conditions.append(is_activity_event('event_name')) -%}
    {%- endif -%}
    {%- if measure.get('currency') == 'reporting' -%}
        {%- do conditions.append('currency = ' ~ sql_string(var('reporting_currency'))) -%}
    {%- endif -%}
    {{- '(' ~ conditions | join(') and (') ~ ')' if conditions else 'true' -}}
{%- endmacro %}

{#- One measure as an aggregate over a group of events, e.g. {{ metric_layer_measure('revenue') }}. -#}
{% macro metric_layer_measure(name) -%}
    {%- set measures = var('metric_layer')['measures'] -%}
    {%- if name not in measures -%}
        {{ exceptions.raise_compiler_error("metric_layer: no measure named " ~ name ~ " in dbt_project.yml") }}
    {%- endif -%}
    {%- set measure = measures[name] -%}
    {%- set condition = metric_layer_condition(measure) -%}
    {%- if measure['agg'] == 'sum' -%}
        coalesce(sum({{ measure['value'] }}) filter (where {{ condition }}), 0)
    {%- elif measure['agg'] == 'any' -%}
        coalesce(bool_or({{ condition }}), false)
    {%- elif measure['agg'] == 'count_distinct' -%}
        count(distinct {{ measure['value'] }}) filter (where {{ condition }})
    {%- else -%}
        {{ exceptions.raise_compiler_error("metric_layer: measure " ~ name ~ " has an unknown agg") }}
    {%- endif -%}
{%- endmacro %}
