"""iot hub and outbox

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

On PostgreSQL iot_telemetry is range-partitioned by day on ts (epoch ms): the maintenance job of
citybrain.iot.runtime creates each day's partition ahead of time, the default partition takes
the rest.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('iot_alarm',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('rule_id', sa.String(length=64), nullable=False),
    sa.Column('device_key', sa.String(length=64), nullable=False),
    sa.Column('product', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('category_code', sa.String(length=20), nullable=True),
    sa.Column('dispatch', sa.Boolean(), nullable=False),
    sa.Column('message', sa.String(length=500), nullable=False),
    sa.Column('value', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=120), nullable=True),
    sa.Column('cleared_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cleared_by', sa.String(length=120), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_iot_alarm'))
    )
    with op.batch_alter_table('iot_alarm', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_iot_alarm_device_key'), ['device_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_iot_alarm_raised_at'), ['raised_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_iot_alarm_status'), ['status'], unique=False)
        batch_op.create_index('uq_iot_alarm_active', ['rule_id', 'device_key'], unique=True, sqlite_where=sa.text("status IN ('active_unack', 'active_ack')"), postgresql_where=sa.text("status IN ('active_unack', 'active_ack')"))

    op.create_table('iot_dead_letter',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('topic', sa.String(length=300), nullable=False),
    sa.Column('device_key', sa.String(length=64), nullable=True),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_iot_dead_letter'))
    )
    with op.batch_alter_table('iot_dead_letter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_iot_dead_letter_code'), ['code'], unique=False)
        batch_op.create_index(batch_op.f('ix_iot_dead_letter_device_key'), ['device_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_iot_dead_letter_received_at'), ['received_at'], unique=False)

    op.create_table('iot_product',
    sa.Column('identifier', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('definition', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=120), nullable=False),
    sa.PrimaryKeyConstraint('identifier', name=op.f('pk_iot_product'))
    )
    op.create_table('iot_rollup',
    sa.Column('device_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('prop', sa.String(length=64), nullable=False),
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('sum', sa.Float(), nullable=False),
    sa.Column('min', sa.Float(), nullable=False),
    sa.Column('max', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('device_id', 'prop', 'period', 'bucket', name=op.f('pk_iot_rollup'))
    )
    op.create_table('iot_rollup_mark',
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('done_until', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('period', name=op.f('pk_iot_rollup_mark'))
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE TABLE iot_telemetry (device_id BIGINT NOT NULL, ts BIGINT NOT NULL, data JSON NOT NULL,"
                   " CONSTRAINT pk_iot_telemetry PRIMARY KEY (device_id, ts)) PARTITION BY RANGE (ts)")
        # Readings for days without their own partition (backfill, before the first maintenance run).
        op.execute("CREATE TABLE iot_telemetry_default PARTITION OF iot_telemetry DEFAULT")
    else:
        op.create_table('iot_telemetry',
        sa.Column('device_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('ts', sa.BigInteger(), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('device_id', 'ts', name=op.f('pk_iot_telemetry'))
        )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('topic', sa.String(length=80), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_delivered_at'), ['delivered_at'], unique=False)

    op.create_table('iot_device',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('product', sa.String(length=64), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('gateway_key', sa.String(length=64), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('township_code', sa.String(length=12), nullable=True),
    sa.Column('grid_code', sa.String(length=32), nullable=True),
    sa.Column('address', sa.String(length=200), nullable=False),
    sa.Column('install_date', sa.Date(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('secret_salt', sa.String(length=32), nullable=True),
    sa.Column('secret_hash', sa.String(length=64), nullable=True),
    sa.Column('secret_rotated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_iot_device_department_id_department')),
    sa.ForeignKeyConstraint(['product'], ['iot_product.identifier'], name=op.f('fk_iot_device_product_iot_product')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_iot_device')),
    sa.UniqueConstraint('key', name=op.f('uq_iot_device_key'))
    )
    with op.batch_alter_table('iot_device', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_iot_device_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_iot_device_gateway_key'), ['gateway_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_iot_device_product'), ['product'], unique=False)
        batch_op.create_index(batch_op.f('ix_iot_device_township_code'), ['township_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_iot_device_updated_at'), ['updated_at'], unique=False)

    op.create_table('iot_rule',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('product', sa.String(length=64), nullable=False),
    sa.Column('device_key', sa.String(length=64), nullable=True),
    sa.Column('property', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('dispatch', sa.Boolean(), nullable=False),
    sa.Column('category_code', sa.String(length=20), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['product'], ['iot_product.identifier'], name=op.f('fk_iot_rule_product_iot_product')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_iot_rule'))
    )
    with op.batch_alter_table('iot_rule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_iot_rule_product'), ['product'], unique=False)

    op.create_table('iot_device_state',
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('last_seen', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['device_id'], ['iot_device.id'], name=op.f('fk_iot_device_state_device_id_iot_device'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_iot_device_state'))
    )
    op.create_table('iot_device_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['iot_device.id'], name=op.f('fk_iot_device_event_device_id_iot_device'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_iot_device_event'))
    )
    op.create_index('ix_iot_device_event_device_ts', 'iot_device_event', ['device_id', 'ts'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_iot_device_event_device_ts', table_name='iot_device_event')
    op.drop_table('iot_device_event')
    op.drop_table('iot_device_state')
    with op.batch_alter_table('iot_rule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_iot_rule_product'))

    op.drop_table('iot_rule')
    with op.batch_alter_table('iot_device', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_iot_device_updated_at'))
        batch_op.drop_index(batch_op.f('ix_iot_device_township_code'))
        batch_op.drop_index(batch_op.f('ix_iot_device_product'))
        batch_op.drop_index(batch_op.f('ix_iot_device_gateway_key'))
        batch_op.drop_index(batch_op.f('ix_iot_device_department_id'))

    op.drop_table('iot_device')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_delivered_at'))

    op.drop_table('outbox')
    op.drop_table('iot_telemetry')
    op.drop_table('iot_rollup_mark')
    op.drop_table('iot_rollup')
    op.drop_table('iot_product')
    with op.batch_alter_table('iot_dead_letter', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_iot_dead_letter_received_at'))
        batch_op.drop_index(batch_op.f('ix_iot_dead_letter_device_key'))
        batch_op.drop_index(batch_op.f('ix_iot_dead_letter_code'))

    op.drop_table('iot_dead_letter')
    with op.batch_alter_table('iot_alarm', schema=None) as batch_op:
        batch_op.drop_index('uq_iot_alarm_active', sqlite_where=sa.text("status IN ('active_unack', 'active_ack')"), postgresql_where=sa.text("status IN ('active_unack', 'active_ack')"))
        batch_op.drop_index(batch_op.f('ix_iot_alarm_status'))
        batch_op.drop_index(batch_op.f('ix_iot_alarm_raised_at'))
        batch_op.drop_index(batch_op.f('ix_iot_alarm_device_key'))

    op.drop_table('iot_alarm')
