"""English msgids for the data pool's vocabularies as pages show them (zh_CN in the catalogs)."""

from __future__ import annotations


def N_(msgid: str) -> str:  # noqa: N802 - marks an English msgid; translated in templates
    return msgid


CLASS_KIND = {"base": N_("Base resource"), "thematic": N_("Thematic resource"),
              "department": N_("Department resource")}
SHARING_TYPE = {"unconditional": N_("Unconditional sharing"), "conditional": N_("Conditional sharing"),
                "none": N_("Not shared")}
OPEN_TYPE = {"open": N_("Open"), "conditional": N_("Conditionally open"), "closed": N_("Not open")}
UPDATE_CYCLE = {"realtime": N_("Real time"), "daily": N_("Daily"), "weekly": N_("Weekly"), "monthly": N_("Monthly"),
                "quarterly": N_("Quarterly"), "yearly": N_("Yearly"), "irregular": N_("Irregular")}
ITEM_TYPE = {"string": N_("Text"), "integer": N_("Integer"), "decimal": N_("Number"), "date": N_("Date"),
             "datetime": N_("Date and time"), "boolean": N_("Yes/no")}
PERSONAL = {"id_number": N_("ID number"), "mobile": N_("Mobile number"), "name": N_("Personal name"),
            "address": N_("Address")}
LOAD_MODE = {"append": N_("Append"), "replace": N_("Replace"), "upsert": N_("Update or insert by key")}
LOAD_STATUS = {"loaded": N_("Loaded"), "refused": N_("Refused")}
REQUEST_STATUS = {"pending": N_("Pending"), "approved": N_("Approved"), "refused": N_("Refused"),
                  "withdrawn": N_("Withdrawn")}
TASK_STATUS = {"open": N_("To be corrected"), "resolved": N_("Resolved")}
FACETS = {"department": N_("Department"), "class_kind": N_("Class"), "sharing_type": N_("Sharing type"),
          "database": N_("Database"), "update_cycle": N_("Update cycle")}
SHARING_BADGE = {"unconditional": "badge-success", "conditional": "badge-warning", "none": "badge-secondary"}
