# Bar chart of benchmark ratios (allocator / reference), called by run.sh:
#   gnuplot -e "datafile='ratios.dat'; outfile='ratios.png'; ref='mallocng'; \
#               term='pngcairo'; ncols=5; ymin=0.01; ymax=64" plot.gp
# datafile: header line "workload alloc1 alloc2 ...", then one row per
# metric, tab separated, "?" where there is no value.
# Bars start at 1 (= the reference) and go up (reference better) or down.
if (!exists("term")) term = 'pngcairo'
if (!exists("ymin")) ymin = 1.0/16
if (!exists("ymax")) ymax = 32
if (term eq 'pngcairo') {
	set terminal pngcairo size 1400,720 enhanced font 'Sans,10'
} else {
	set terminal png size 1400,720
}
set output outfile
set datafile separator "\t"
set datafile missing "?"
set title sprintf("Other allocators relative to %s (value / %s, log scale)\nbar above 1: %s is faster / uses less memory; below 1: %s is slower / uses more", ref, ref, ref, ref) noenhanced
set logscale y 2
set yrange [ymin:ymax]
set format y "%.3g"
set ytics 2
set grid ytics
set xtics rotate by 30 right noenhanced scale 0
set key outside right top noenhanced autotitle columnheader
set ylabel sprintf("ratio to %s", ref) noenhanced
set bmargin 9
set style fill solid 0.85 border -1
bw = 0.8 / ncols
off(i) = (i - 2 - (ncols - 1) / 2.0) * bw
lo(v) = v < 1 ? v : 1
hi(v) = v > 1 ? v : 1
set xrange [-0.6:*]
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb "black" front
plot datafile using 0:(NaN):xtic(1) notitle with points, \
	for [i=2:ncols+1] datafile using ($0 + off(i)):(column(i)):($0 + off(i) - bw/2):($0 + off(i) + bw/2):(lo(column(i))):(hi(column(i))) \
	with boxxyerror lt (i - 1) title columnheader(i)
