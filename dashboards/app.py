"""The harness dashboard: ``streamlit run dashboards/app.py``.

Reads only the report folders (``$HARNESS_REPORTS`` or ``reports/``, one folder per run); every
figure comes from a run's ``decision.json`` and the files beside it. The SLO review section reads a
spec's SLOs over their window from Prometheus (``$HARNESS_PROMETHEUS``) or from records under the
report root (``review_data.py``)."""

import streamlit as st

from board import sidebar

st.set_page_config(page_title="Captioning SLO harness", page_icon=":material/monitoring:", layout="wide")

pages = {
    "Release": [
        st.Page("views/decision.py", title="Canary decision", icon=":material/gavel:", default=True),
        st.Page("views/drift.py", title="Drift", icon=":material/waves:"),
    ],
    "Operations": [
        st.Page("views/executive.py", title="Executive", icon=":material/insights:"),
        st.Page("views/oncall.py", title="On-call", icon=":material/notifications_active:"),
        st.Page("views/debug.py", title="Debug", icon=":material/bug_report:"),
    ],
    "Quality": [st.Page("views/rate.py", title="Rate captions", icon=":material/star:")],
    "SLO review": [
        st.Page("views/slo_list.py", title="SLO list", icon=":material/checklist:"),
        st.Page("views/slo_page.py", title="SLO page", icon=":material/timeline:"),
    ],
}
nav = st.navigation(pages)
sidebar()
nav.run()
