{#- The custom schema is used verbatim (staging / intermediate / marts): analysts and the Dagster
    asset keys rely on these names, so they must not be prefixed with the target schema. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
