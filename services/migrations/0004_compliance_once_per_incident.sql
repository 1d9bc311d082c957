-- One compliance report per incident: the compliance-check job may run twice.
CREATE UNIQUE INDEX compliance_reports_incident ON flow.compliance_reports (tenant_id, incident_id)
    WHERE incident_id IS NOT NULL;
