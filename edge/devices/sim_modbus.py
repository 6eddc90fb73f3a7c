"""A Modbus RTU slave on a pty, framed by pymodbus: thermometer registers, relay coils, door input.

pymodbus's own server opens its port by path, so it cannot serve the master side of a pty;
this slave reuses pymodbus's RTU framer (CRC included) and PDU classes and keeps the data
in plain dicts that tests can read and poke.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import (
    ReadCoilsResponse,
    ReadDiscreteInputsResponse,
    WriteSingleCoilResponse,
)
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
    WriteSingleRegisterResponse,
)

from edge.devices.sim_serial import PtySim, ScriptedTemperature, TemperatureScript

# RTU frames are delimited by silence; a gap this long starts a new frame (3.5 chars is
# ~4 ms at 9600 baud, but a pty and a busy test box need more slack).
FRAME_GAP_S = 0.05


class ModbusSlaveSim(PtySim):
    """An RTU slave with holding/input registers, coils and discrete inputs (FC01-06)."""

    def __init__(
        self, link_dir: str | Path, name: str = "ttyMB0", unit: int = 1, bits: int = 8
    ) -> None:
        super().__init__(link_dir, name)
        self.unit = unit
        self.holding: dict[int, int] = {}
        self.input_registers: dict[int, int] = {}
        self.coils = dict.fromkeys(range(bits), False)
        self.discrete_inputs = dict.fromkeys(range(bits), False)
        self.history: list[tuple[float, int, bool]] = []
        self.requests = 0
        self._stuck = False
        self._framer = FramerRTU(DecodePDU(is_server=True))
        self._rx = bytearray()
        self._last_rx = 0.0

    def stick(self, stuck: bool = True) -> None:
        """Acknowledge coil writes but leave the coils unchanged (a relay that will not pull in)."""
        self._stuck = stuck

    def set_discrete_input(self, address: int, value: bool) -> None:
        """Drive a discrete input, e.g. the door contact."""
        with self._lock:
            self.discrete_inputs[address] = value

    def _on_rx(self, data: bytes) -> None:
        now = time.monotonic()
        if now - self._last_rx > FRAME_GAP_S:
            self._rx.clear()
        self._last_rx = now
        self._rx += data
        try:
            used, request = self._framer.handleFrame(bytes(self._rx), 0, 0)
        except ModbusException:
            self._rx.clear()
            return
        del self._rx[:used]
        if request is None or request.dev_id != self.unit:
            return  # a slave stays silent on frames for other units and on broken ones
        self.requests += 1
        with self._lock:
            response = self._answer(request)
        response.dev_id = self.unit
        response.transaction_id = request.transaction_id
        self.send_raw(self._framer.buildFrame(response))

    def _answer(self, request: ModbusPDU) -> ModbusPDU:
        code, address, count = request.function_code, request.address, request.count
        span = range(address, address + count)
        if code in (1, 2):
            table = self.coils if code == 1 else self.discrete_inputs
            if not all(a in table for a in span):
                return ExceptionResponse(code, ExcCodes.ILLEGAL_ADDRESS)
            bit_class = ReadCoilsResponse if code == 1 else ReadDiscreteInputsResponse
            return bit_class(bits=[table[a] for a in span])
        if code in (3, 4):
            registers = self.holding if code == 3 else self.input_registers
            self._before_register_read(code, address)
            if not all(a in registers for a in span):
                return ExceptionResponse(code, ExcCodes.ILLEGAL_ADDRESS)
            reg_class = ReadHoldingRegistersResponse if code == 3 else ReadInputRegistersResponse
            return reg_class(registers=[registers[a] for a in span])
        if code == 5 and address in self.coils:
            self._write_coil(address, bool(request.bits[0]))
            return WriteSingleCoilResponse(address=address, bits=[bool(request.bits[0])])
        if code == 6 and address in self.holding:
            self.holding[address] = request.registers[0]
            return WriteSingleRegisterResponse(address=address, registers=request.registers)
        if code in (5, 6):
            return ExceptionResponse(code, ExcCodes.ILLEGAL_ADDRESS)
        return ExceptionResponse(code, ExcCodes.ILLEGAL_FUNCTION)

    def _write_coil(self, address: int, value: bool) -> None:
        if self._stuck or self.coils[address] == value:
            return
        self.coils[address] = value
        self.history.append((time.monotonic(), address, value))

    def _before_register_read(self, code: int, address: int) -> None:
        """Refresh a register just before it is read (live sensor values)."""


class ModbusThermoSim(ScriptedTemperature, ModbusSlaveSim):
    """A Modbus temperature sensor: one signed register in units of ``scale`` °C, fresh per read."""

    def __init__(
        self,
        link_dir: str | Path,
        name: str = "ttyMB1",
        unit: int = 1,
        *,
        register: int = 0,
        scale: float = 0.1,
        input_register: bool = False,
        celsius: float = 36.5,
    ) -> None:
        super().__init__(link_dir, name, unit)
        self.register = register
        self.scale = scale
        self.script = TemperatureScript(celsius)
        self._table = self.input_registers if input_register else self.holding
        self._table[register] = 0

    def _before_register_read(self, code: int, address: int) -> None:
        if address == self.register:
            raw = round(self.script.next() / self.scale)
            self._table[address] = struct.unpack(">H", struct.pack(">h", raw))[0]
